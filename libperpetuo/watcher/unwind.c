#include "config.h"

#include <elf.h>
#include <errno.h>
#include <libunwind-ptrace.h>
#include <link.h>
#include <sys/auxv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "unwind.h"

#define PAGE 4096u
#define PAGE_CACHE_SLOTS 256u /* 1 MiB */
#define MODULES_MAX 512u

struct cached_page {
  uint64_t addr;
  uint32_t epoch;
  bool valid;
  bool persistent; /* from a mapping without write permission */
  unsigned char data[PAGE];
};

struct module {
  char *path;
  void *upt; /* libunwind-ptrace's handle, caching this module's image */
};

/*
 * libunwind-ptrace finds unwind tables in files, and the vDSO is none; but
 * the target's vDSO is the watcher's own (one kernel), whose
 * .eh_frame_hdr we can read here and hand to libunwind's table search, as
 * libunwind-ptrace does for a file. This symbol is what _UPT_find_proc_info
 * calls; libunwind exports it without declaring it.
 */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as,
                                              unw_word_t ip, unw_dyn_info_t *di,
                                              unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

struct unwinder {
  pid_t pid;
  bool vdso_known;
  unw_dyn_info_t vdso; /* the target's vDSO's table, when vdso_known */
  unw_addr_space_t as;
  const struct maps *maps;
  struct module *modules;
  size_t module_count;
  struct cached_page *pages;
  uint32_t epoch;
  /* The thread being unwound, and why memory could not be read. */
  const struct frozen_thread *thread;
  const char *memory_why;
};

/*
 * libunwind-ptrace calls our memory accessor with its own handle as the
 * argument, not ours, so the unwinder at work is kept here. The watcher
 * unwinds one thread at a time, on one thread.
 */
static struct unwinder *active;

static const char *const beyond_copy =
    "the stack goes on past the part copied while the thread was stopped";

static int read_page(struct unwinder *u, uint64_t page,
                     const unsigned char **out) {
  struct cached_page *c = &u->pages[(page / PAGE) % PAGE_CACHE_SLOTS];
  if (c->valid && c->addr == page && (c->persistent || c->epoch == u->epoch)) {
    *out = c->data;
    return 0;
  }
  struct iovec local = {.iov_base = c->data, .iov_len = PAGE};
  struct iovec remote = {.iov_base = (void *)(uintptr_t)page, .iov_len = PAGE};
  c->valid = false;
  if (process_vm_readv(u->pid, &local, 1, &remote, 1, 0) != (ssize_t)PAGE) {
    u->memory_why = "the target's memory could not be read";
    return -UNW_EINVAL;
  }
  const struct mapping *m = u->maps ? maps_find(u->maps, page) : NULL;
  c->addr = page;
  c->epoch = u->epoch;
  c->persistent = m && m->perms[1] != 'w';
  c->valid = true;
  *out = c->data;
  return 0;
}

static int read_word(struct unwinder *u, uint64_t addr, unw_word_t *val) {
  const struct frozen_thread *t = u->thread;
  if (addr + sizeof(*val) < addr)
    return -UNW_EINVAL;
  if (t->stack && addr >= t->stack_start &&
      addr + sizeof(*val) <= t->stack_start + t->stack_len) {
    memcpy(val, t->stack + (addr - t->stack_start), sizeof(*val));
    return 0;
  }
  /* The rest of this stack moved on when the thread resumed. */
  if (t->stack && addr >= t->stack_start && addr < t->stack_end) {
    u->memory_why = beyond_copy;
    return -UNW_EINVAL;
  }
  unsigned char bytes[sizeof(*val)];
  for (size_t done = 0; done < sizeof(bytes);) {
    uint64_t at = addr + done;
    const unsigned char *page;
    int err = read_page(u, at & ~(uint64_t)(PAGE - 1), &page);
    if (err)
      return err;
    size_t in_page = PAGE - (size_t)(at % PAGE);
    size_t n = sizeof(bytes) - done < in_page ? sizeof(bytes) - done : in_page;
    memcpy(bytes + done, page + at % PAGE, n);
    done += n;
  }
  memcpy(val, bytes, sizeof(*val));
  return 0;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
                      int write, void *arg) {
  if (write || !active)
    return -UNW_EINVAL;
  return read_word(active, addr, val);
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
                      int write, void *arg) {
  if (write)
    return -UNW_EREADONLYREG;
  if (!active)
    return -UNW_EBADREG;
  const struct user_regs_struct *r = &active->thread->regs;
#if defined(__x86_64__)
  switch (reg) {
  case UNW_X86_64_RAX: *val = r->rax; return 0;
  case UNW_X86_64_RDX: *val = r->rdx; return 0;
  case UNW_X86_64_RCX: *val = r->rcx; return 0;
  case UNW_X86_64_RBX: *val = r->rbx; return 0;
  case UNW_X86_64_RSI: *val = r->rsi; return 0;
  case UNW_X86_64_RDI: *val = r->rdi; return 0;
  case UNW_X86_64_RBP: *val = r->rbp; return 0;
  case UNW_X86_64_RSP: *val = r->rsp; return 0;
  case UNW_X86_64_R8: *val = r->r8; return 0;
  case UNW_X86_64_R9: *val = r->r9; return 0;
  case UNW_X86_64_R10: *val = r->r10; return 0;
  case UNW_X86_64_R11: *val = r->r11; return 0;
  case UNW_X86_64_R12: *val = r->r12; return 0;
  case UNW_X86_64_R13: *val = r->r13; return 0;
  case UNW_X86_64_R14: *val = r->r14; return 0;
  case UNW_X86_64_R15: *val = r->r15; return 0;
  case UNW_X86_64_RIP: *val = r->rip; return 0;
  }
#elif defined(__aarch64__)
  if (reg >= UNW_AARCH64_X0 && reg <= UNW_AARCH64_X30) {
    *val = r->regs[reg - UNW_AARCH64_X0];
    return 0;
  }
  if (reg == UNW_AARCH64_SP) {
    *val = r->sp;
    return 0;
  }
  if (reg == UNW_AARCH64_PC) {
    *val = r->pc;
    return 0;
  }
#endif
  return -UNW_EBADREG;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
                        int write, void *arg) {
  return -UNW_EBADREG; /* not needed to walk frames */
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg) {
  return -UNW_EINVAL; /* we look, never resume execution */
}

/* libunwind-ptrace's handle for the module holding `ip`, or NULL. */
static void *module_upt(struct unwinder *u, uint64_t ip) {
  const struct mapping *m = u->maps ? maps_find(u->maps, ip) : NULL;
  if (!m || !m->path[0] || m->path[0] == '[')
    return NULL; /* anonymous memory (JIT code), or [vdso] and such */
  for (size_t i = 0; i < u->module_count; i++)
    if (strcmp(u->modules[i].path, m->path) == 0)
      return u->modules[i].upt;
  if (u->module_count >= MODULES_MAX)
    return NULL;
  char *path = strdup(m->path);
  void *upt = path ? _UPT_create(u->pid) : NULL;
  if (!upt) {
    free(path);
    return NULL;
  }
  u->modules[u->module_count++] = (struct module){.path = path, .upt = upt};
  return upt;
}

static int find_proc_info(unw_addr_space_t as, unw_word_t ip,
                          unw_proc_info_t *pi, int need_unwind_info,
                          void *arg) {
  if (active && active->vdso_known && ip >= active->vdso.start_ip &&
      ip < active->vdso.end_ip)
    return UNW_OBJ(dwarf_search_unwind_table)(as, ip, &active->vdso, pi,
                                              need_unwind_info, arg);
  void *upt = active ? module_upt(active, ip) : NULL;
  if (!upt)
    return -UNW_ENOINFO;
  return _UPT_find_proc_info(as, ip, pi, need_unwind_info, upt);
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi,
                            void *arg) {
  _UPT_put_unwind_info(as, pi, arg);
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr,
                                  void *arg) {
  return -UNW_ENOINFO; /* no dynamically registered unwind info */
}

static int get_proc_name(unw_addr_space_t as, unw_word_t ip, char *buf,
                         size_t len, unw_word_t *offset, void *arg) {
  void *upt = active ? module_upt(active, ip) : NULL;
  if (!upt)
    return -UNW_ENOINFO;
  return _UPT_get_proc_name(as, ip, buf, len, offset, upt);
}

static unw_accessors_t accessors = {
    .find_proc_info = find_proc_info,
    .put_unwind_info = put_unwind_info,
    .get_dyn_info_list_addr = get_dyn_info_list_addr,
    .access_mem = access_mem,
    .access_reg = access_reg,
    .access_fpreg = access_fpreg,
    .resume = resume,
    .get_proc_name = get_proc_name,
};

struct unwinder *unwinder_new(pid_t pid) {
  struct unwinder *u = calloc(1, sizeof(*u));
  if (!u)
    return NULL;
  u->pid = pid;
  u->modules = calloc(MODULES_MAX, sizeof(*u->modules));
  u->pages = calloc(PAGE_CACHE_SLOTS, sizeof(*u->pages));
  u->as = unw_create_addr_space(&accessors, 0);
  if (!u->modules || !u->pages || !u->as) {
    unwinder_free(u);
    return NULL;
  }
  /* Unwind rules are remembered per address, across captures: a stall
   * seen again costs no table lookups. Dropped when the maps change. */
  unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
  return u;
}

static void drop_modules(struct unwinder *u) {
  for (size_t i = 0; i < u->module_count; i++) {
    free(u->modules[i].path);
    _UPT_destroy(u->modules[i].upt);
  }
  u->module_count = 0;
}

void unwinder_free(struct unwinder *u) {
  if (!u)
    return;
  if (u->modules)
    drop_modules(u);
  if (u->as)
    unw_destroy_addr_space(u->as);
  free(u->modules);
  free(u->pages);
  free(u);
}

/*
 * Describes the target's vDSO at `m` for libunwind, if it is byte for byte
 * the watcher's own (it is, unless the target is of another ABI).
 */
static bool find_vdso_table(struct unwinder *u, const struct mapping *m) {
  const unsigned char *own = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
  size_t size = (size_t)(m->end - m->start);
  if (!own || size > (1u << 20))
    return false;
  const ElfW(Ehdr) *ehdr = (const ElfW(Ehdr) *)own;
  const ElfW(Phdr) *phdr = (const ElfW(Phdr) *)(own + ehdr->e_phoff);
  const ElfW(Phdr) *load = NULL, *eh = NULL;
  for (int i = 0; i < ehdr->e_phnum; i++) {
    if (phdr[i].p_type == PT_LOAD && !load)
      load = &phdr[i];
    else if (phdr[i].p_type == PT_GNU_EH_FRAME)
      eh = &phdr[i];
  }
  if (!load || !eh || eh->p_vaddr < load->p_vaddr ||
      eh->p_vaddr - load->p_vaddr + 12 > size)
    return false;
  unsigned char *theirs = malloc(size);
  struct iovec local = {.iov_base = theirs, .iov_len = size};
  struct iovec remote = {.iov_base = (void *)(uintptr_t)m->start,
                         .iov_len = size};
  bool same =
      theirs &&
      process_vm_readv(u->pid, &local, 1, &remote, 1, 0) == (ssize_t)size &&
      memcmp(theirs, own, size) == 0;
  free(theirs);
  if (!same)
    return false;
  /* The usual encodings, as every x86-64 and aarch64 kernel writes them:
   * eh_frame_ptr pcrel|sdata4, fde_count udata4, table datarel|sdata4. */
  size_t off = (size_t)(eh->p_vaddr - load->p_vaddr);
  const unsigned char *hdr = own + off;
  if (hdr[0] != 1 || hdr[1] != 0x1b || hdr[2] != 0x03 || hdr[3] != 0x3b)
    return false;
  uint32_t fde_count;
  memcpy(&fde_count, hdr + 8, sizeof(fde_count));
  u->vdso = (unw_dyn_info_t){
      .start_ip = m->start,
      .end_ip = m->end,
      .format = UNW_INFO_FORMAT_REMOTE_TABLE,
  };
  u->vdso.u.rti.segbase = m->start + off;
  u->vdso.u.rti.table_data = m->start + off + 12;
  u->vdso.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
  return true;
}

void unwinder_set_maps(struct unwinder *u, const struct maps *maps,
                       bool changed) {
  u->maps = maps;
  u->epoch++; /* writable memory may have changed since last time */
  if (changed) {
    drop_modules(u);
    for (size_t i = 0; i < PAGE_CACHE_SLOTS; i++)
      u->pages[i].valid = false;
    unw_flush_cache(u->as, 0, 0);
    u->vdso_known = false;
    for (size_t i = 0; maps && i < maps->count; i++)
      if (strcmp(maps->mappings[i].path, "[vdso]") == 0) {
        u->vdso_known = find_vdso_table(u, &maps->mappings[i]);
        break;
      }
  }
}

size_t unwind_thread(struct unwinder *u, const struct frozen_thread *t,
                     uint64_t *ips, bool *signal_frame, size_t max, char *why,
                     size_t why_size) {
  why[0] = '\0';
  if (t->status != FROZEN_STOPPED) {
    snprintf(why, why_size, "the thread was not stopped");
    return 0;
  }
  active = u;
  u->thread = t;
  u->memory_why = NULL;
  unw_cursor_t cursor;
  size_t n = 0;
  int err = unw_init_remote(&cursor, u->as, u);
  if (err < 0) {
    snprintf(why, why_size, "unwinding could not start: %s", unw_strerror(err));
    goto out;
  }
  unw_word_t last_sp = 0, last_ip = 0;
  while (n < max) {
    unw_word_t ip = 0, sp = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    unw_get_reg(&cursor, UNW_REG_SP, &sp);
    if (n && ip == last_ip && sp == last_sp) {
      snprintf(why, why_size, "unwinding made no progress at frame %zu", n);
      break;
    }
    ips[n] = ip;
    signal_frame[n] = unw_is_signal_frame(&cursor) > 0;
    n++;
    last_ip = ip;
    last_sp = sp;
    u->memory_why = NULL;
    int step = unw_step(&cursor);
    if (step == 0)
      break; /* the outermost frame */
    if (step < 0) {
      snprintf(why, why_size, "unwinding stopped after frame %zu: %s", n - 1,
               u->memory_why ? u->memory_why : unw_strerror(step));
      break;
    }
  }
  if (n == max && !why[0])
    snprintf(why, why_size, "the stack is deeper than %zu frames", max);
out:
  active = NULL;
  u->thread = NULL;
  return n;
}

bool unwinder_proc_name(struct unwinder *u, uint64_t ip, char *buf, size_t len,
                        uint64_t *offset) {
  void *upt = module_upt(u, ip);
  unw_word_t off = 0;
  if (!upt || _UPT_get_proc_name(u->as, ip, buf, len, &off, upt) < 0)
    return false;
  *offset = off;
  return true;
}
