/* The Python layout block of this interpreter (see _layout.c). */
#ifndef PERPETUO_PY_LAYOUT_H
#define PERPETUO_PY_LAYOUT_H

#include <perpetuo.h>

struct perpetuo__pylayout;

/* Fills `l` for the running interpreter; `ready` is set last. */
void perpetuo_py_layout_fill(struct perpetuo__pylayout *l);

/*
 * The rule that says a thread waits for this interpreter's GIL while its
 * holder keeps it: its drop request set, its switch number still.
 */
void perpetuo_py_gil_contention(perpetuo_contention_t *rule);

#endif
