/*
 * The handshake between libperpetuo and the watcher it spawns, over a socket
 * pair passed as the watcher's PERPETUO__CONTROL_FD:
 *   watcher -> library: struct perpetuo__hello (its pid, after it has forked
 *                       away from the library's process tree)
 *   library -> watcher: one byte PERPETUO__GO (it may now trace the target)
 *   watcher -> library: int32_t 0 once it is watching; it closes the socket
 *                       without it if it fails (and says why on its output).
 * Both sides are built from one source tree, so the layout is not versioned.
 */
#ifndef PERPETUO_HANDSHAKE_H
#define PERPETUO_HANDSHAKE_H

#include <stdint.h>

#define PERPETUO__CONTROL_FD 3
#define PERPETUO__OUTPUT_FD 4
#define PERPETUO__HELLO_MAGIC 0x50575448u /* "PWTH" */
#define PERPETUO__GO 'G'

struct perpetuo__hello {
  uint32_t magic;
  int32_t pid;
};

#endif
