/*
 * Native stacks, unwound with libunwind from a frozen thread's snapshot
 * (registers and stack copy, see freeze.h) after the thread has resumed.
 *
 * The address space's accessors are libunwind-ptrace's for everything about
 * unwind tables (_UPT_find_proc_info reads the target's ELF files), and ours
 * for memory and registers: the stack comes from the snapshot, other memory
 * (.eh_frame and such, mapped read-only and so unchanged by the resumed
 * thread) from the live process through a page cache. libunwind-ptrace keeps
 * one ELF image per _UPT handle, so we keep one handle per module rather than
 * re-reading /proc/PID/maps and re-mapping a file whenever a stack crosses
 * from one module to another.
 */
#ifndef PERPETUO_WATCHER_UNWIND_H
#define PERPETUO_WATCHER_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "freeze.h"
#include "maps.h"

#define UNWIND_MAX_FRAMES 512

struct unwinder; /* opaque: libunwind's address space and our caches */

struct unwinder *unwinder_new(pid_t pid);
void unwinder_free(struct unwinder *u);

/* The target's maps changed (a library loaded, say): drop what depends on
 * them. `maps` must stay valid until the next call. */
void unwinder_set_maps(struct unwinder *u, const struct maps *maps,
                       bool changed);

/*
 * Unwinds a stopped thread's snapshot: ips[0] is the innermost frame. Sets
 * signal_frame[i] when frame i is a signal trampoline (the frame after it
 * then has an exact address, not a return address). Returns the number of
 * frames; when unwinding stopped before the outermost frame, says why in
 * `why` (else why[0] == '\0').
 */
size_t unwind_thread(struct unwinder *u, const struct frozen_thread *t,
                     uint64_t *ips, bool *signal_frame, size_t max, char *why,
                     size_t why_size);

/*
 * The function holding `ip`, from the module's ELF symbol table
 * (unw_get_proc_name's way): the fallback when there is no better source.
 */
bool unwinder_proc_name(struct unwinder *u, uint64_t ip, char *buf, size_t len,
                        uint64_t *offset);

#endif
