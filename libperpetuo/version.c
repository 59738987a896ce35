/* Version and error descriptions. */
#include "config.h"

#include <string.h>

#include "internal.h"

const char *perpetuo_version(void) { return PACKAGE_VERSION; }

unsigned perpetuo_version_number(void) { return PERPETUO_VERSION_HEX; }

const char *perpetuo_strerror(int error) {
  switch (error) {
  case 0: return "success";
  case PERPETUO_EACTIVE: return "the tracker is already active";
  case PERPETUO_EIDLE: return "the tracker is already idle";
  case PERPETUO_EWATCHER:
    return "the watcher process exited before it started watching (its "
           "output says why)";
  case PERPETUO_EWATCHER_TIMEOUT:
    return "the watcher process did not confirm it was watching in time";
  }
  /* Range first: negating INT_MIN would overflow. */
  if (error > -4096 && error < 4096) {
    /* strerrordesc_np is thread-safe and static, unlike strerror. */
    const char *desc = strerrordesc_np(error < 0 ? -error : error);
    if (desc)
      return desc;
  }
  return "unknown error";
}
