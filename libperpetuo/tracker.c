/* Trackers: registration, release, and the checked ticks. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/*
 * A tracker handle is its slot: the slot stays put for the process's life,
 * so the handle needs no allocation of its own.
 */
static struct perpetuo__slot *as_slot(const perpetuo_tracker_t *tracker) {
  return (struct perpetuo__slot *)(uintptr_t)tracker;
}

#define MAX_THRESHOLD_MS 86400000u

void perpetuo_tracker_options_init(perpetuo_tracker_options_t *opts) {
  if (!opts)
    return;
  *opts = (perpetuo_tracker_options_t){
      .size = sizeof(*opts),
      .thread_hint = PERPETUO_THREAD_REGISTRAR,
  };
}

/*
 * Copies the caller's options into `out`, accepting any size from the first
 * release's on: a caller compiled against an older header passes fewer
 * fields, and the rest keep their defaults.
 */
static int read_tracker_options(const perpetuo_tracker_options_t *opts,
                                perpetuo_tracker_options_t *out) {
  perpetuo_tracker_options_init(out);
  if (!opts)
    return 0;
  if (opts->size <
      offsetof(perpetuo_tracker_options_t, initially_active) + sizeof(int))
    return -EINVAL;
  memcpy(out, opts, opts->size < sizeof(*out) ? opts->size : sizeof(*out));
  out->size = sizeof(*out);
  switch (out->thread_hint) {
  case PERPETUO_THREAD_REGISTRAR:
  case PERPETUO_THREAD_NONE:
  case PERPETUO_THREAD_GIL_HOLDER: break;
  case PERPETUO_THREAD_NATIVE:
    if (out->thread_id == 0 || out->thread_id > INT32_MAX)
      return -EINVAL;
    break;
  case PERPETUO_THREAD_PTHREAD:
    if (out->thread_id == 0)
      return -EINVAL;
    break;
  default: return -EINVAL;
  }
  if (out->threshold_ms > MAX_THRESHOLD_MS)
    return -EINVAL;
  if (out->initially_active != 0 && out->initially_active != 1)
    return -EINVAL;
  return 0;
}

static int tracker_register(perpetuo_tracker_t **ret, const char *name,
                            uint32_t kind, uint64_t *external,
                            const uint64_t aux[4],
                            const perpetuo_tracker_options_t *opts) {
  if (!ret || !name || !name[0])
    return -EINVAL;
  perpetuo_tracker_options_t o;
  int err = read_tracker_options(opts, &o);
  if (err)
    return err;
  struct perpetuo__slot_request request = {
      .kind = kind,
      .external_addr = (uint64_t)(uintptr_t)external,
      .thread_hint = (uint32_t)o.thread_hint,
      .thread_id = o.thread_id,
      .threshold_ms = o.threshold_ms,
      .initially_active = kind == PERPETUO__KIND_INLINE && o.initially_active,
      .name = name,
  };
  if (aux)
    memcpy(request.aux, aux, sizeof(request.aux));
  struct perpetuo__slot *slot = perpetuo__region_claim(&request, &err);
  if (!slot)
    return err;
  *ret = (perpetuo_tracker_t *)slot;
  return 0;
}

int perpetuo_tracker_new(perpetuo_tracker_t **ret, const char *name,
                         const perpetuo_tracker_options_t *opts) {
  return tracker_register(ret, name, PERPETUO__KIND_INLINE, NULL, NULL, opts);
}

int perpetuo_tracker_new_external(perpetuo_tracker_t **ret, const char *name,
                                  uint64_t *counter,
                                  const perpetuo_tracker_options_t *opts) {
  if (!counter || (uintptr_t)counter % _Alignof(uint64_t) != 0)
    return -EINVAL;
  return tracker_register(ret, name, PERPETUO__KIND_EXTERNAL, counter, NULL,
                          opts);
}

int perpetuo_tracker_new_contention(perpetuo_tracker_t **ret, const char *name,
                                    const perpetuo_contention_t *rule,
                                    const perpetuo_tracker_options_t *opts) {
  if (!rule || !rule->handovers || rule->handovers % 8 != 0 ||
      !rule->request_mask || (rule->flags & ~PERPETUO_CONTENTION_VIA_HOLDER))
    return -EINVAL;
  bool via_holder = rule->flags & PERPETUO_CONTENTION_VIA_HOLDER;
  if (via_holder ? !rule->holder || rule->holder % 8 != 0 ||
                       rule->request > 65536 || rule->request % 4 != 0
                 : !rule->request || rule->request % 4 != 0 || rule->holder)
    return -EINVAL;
  uint64_t aux[4] = {rule->request,
                     rule->request_mask | (uint64_t)rule->flags << 32,
                     rule->holder, 0};
  return tracker_register(ret, name, PERPETUO__KIND_CONTENTION,
                          (uint64_t *)(uintptr_t)rule->handovers, aux, opts);
}

int perpetuo_tracker_free(perpetuo_tracker_t *tracker) {
  if (!tracker)
    return 0;
  struct perpetuo__slot *slot = as_slot(tracker);
  if (slot->kind == PERPETUO__KIND_INLINE &&
      perpetuo_counter_is_active(&slot->counter))
    return -EBUSY;
  perpetuo__region_release(slot);
  return 0;
}

uint64_t *perpetuo_tracker_counter(const perpetuo_tracker_t *tracker) {
  if (!tracker || as_slot(tracker)->kind == PERPETUO__KIND_CONTENTION)
    return NULL;
  return (uint64_t *)(uintptr_t)as_slot(tracker)->counter_addr;
}

perpetuo_detail_t *perpetuo_tracker_detail(perpetuo_tracker_t *tracker) {
  if (!tracker)
    return NULL;
  /* Two u64 in a row in the slot, the layout of perpetuo_detail_t. */
  return (perpetuo_detail_t *)(void *)&as_slot(tracker)->detail_text;
}

int perpetuo_tracker_enter(perpetuo_tracker_t *tracker) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  if (!counter)
    return -EINVAL;
  if (perpetuo_counter_is_active(counter))
    return PERPETUO_EACTIVE;
  perpetuo_counter_enter(counter);
  return 0;
}

int perpetuo_tracker_leave(perpetuo_tracker_t *tracker) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  if (!counter)
    return -EINVAL;
  if (!perpetuo_counter_is_active(counter))
    return PERPETUO_EIDLE;
  perpetuo_counter_leave(counter);
  return 0;
}

int perpetuo_tracker_is_active(const perpetuo_tracker_t *tracker) {
  const uint64_t *counter = perpetuo_tracker_counter(tracker);
  if (!counter)
    return -EINVAL;
  return perpetuo_counter_is_active(counter);
}
