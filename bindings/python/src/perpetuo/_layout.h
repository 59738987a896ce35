/* The Python layout block of this interpreter (see _layout.c). */
#ifndef PERPETUO_PY_LAYOUT_H
#define PERPETUO_PY_LAYOUT_H

struct perpetuo__pylayout;

/* Fills `l` for the running interpreter; `ready` is set last. */
void perpetuo_py_layout_fill(struct perpetuo__pylayout *l);

#endif
