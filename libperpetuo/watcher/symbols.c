#include "config.h"

#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"

/* Names found, by address: libdw's lookups (the DWARF scopes above all)
 * cost tens of microseconds a frame, and stalls come back to the same
 * places. Dropped when the modules change. */
#define CACHE_SLOTS 4096u

struct cached_symbol {
  uint64_t key; /* ip * 2 + return_address; 0: empty */
  size_t count;
  struct native_frame *frames;
};

struct symbolizer {
  pid_t pid;
  Dwfl *dwfl;
  bool reported;
  struct cached_symbol *cache;
};

static char *debuginfo_path;
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

struct symbolizer *symbolizer_new(pid_t pid) {
  struct symbolizer *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->pid = pid;
  s->dwfl = dwfl_begin(&callbacks);
  s->cache = calloc(CACHE_SLOTS, sizeof(*s->cache));
  if (!s->dwfl || !s->cache) {
    symbolizer_free(s);
    return NULL;
  }
  return s;
}

static void cache_clear(struct symbolizer *s) {
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    struct cached_symbol *c = &s->cache[i];
    for (size_t j = 0; j < c->count; j++)
      native_frame_clear(&c->frames[j]);
    free(c->frames);
    *c = (struct cached_symbol){0};
  }
}

void symbolizer_free(struct symbolizer *s) {
  if (!s)
    return;
  if (s->dwfl)
    dwfl_end(s->dwfl);
  if (s->cache)
    cache_clear(s);
  free(s->cache);
  free(s);
}

int symbolizer_refresh(struct symbolizer *s) {
  cache_clear(s);
  dwfl_report_begin(s->dwfl);
  int err = dwfl_linux_proc_report(s->dwfl, s->pid);
  dwfl_report_end(s->dwfl, NULL, NULL);
  s->reported = err == 0;
  return err > 0 ? -err : err < 0 ? -EINVAL : 0;
}

static int warm_module(Dwfl_Module *mod, void **userdata, const char *name,
                       Dwarf_Addr start, void *arg) {
  Dwarf_Addr bias;
  dwfl_module_getsymtab(mod);
  dwfl_module_getdwarf(mod, &bias);
  return DWARF_CB_OK;
}

void symbolizer_warm(struct symbolizer *s) {
  if (s->reported)
    dwfl_getmodules(s->dwfl, warm_module, NULL, 0);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void frame_copy(struct native_frame *to,
                       const struct native_frame *from) {
  *to = *from;
  to->function = dup_or_null(from->function);
  to->module = dup_or_null(from->module);
  to->file = dup_or_null(from->file);
}

/* "memcpy@@GLIBC_2.14" is memcpy to a reader: the version goes. */
static char *function_name(const char *s) {
  if (!s)
    return NULL;
  const char *at = strchr(s, '@');
  return at && at != s ? strndup(s, (size_t)(at - s)) : strdup(s);
}

void native_frame_clear(struct native_frame *f) {
  free(f->function);
  free(f->module);
  free(f->file);
  *f = (struct native_frame){0};
}

/* The source file of a DW_AT_call_file index in the CU `cu`, or NULL. */
static const char *call_file(Dwarf_Die *cu, Dwarf_Die *scope) {
  Dwarf_Attribute attr;
  Dwarf_Word index;
  Dwarf_Files *files;
  size_t count;
  if (!dwarf_attr(scope, DW_AT_call_file, &attr) ||
      dwarf_formudata(&attr, &index) != 0 ||
      dwarf_getsrcfiles(cu, &files, &count) != 0 || index >= count)
    return NULL;
  return dwarf_filesrc(files, index, NULL, NULL);
}

static int call_line(Dwarf_Die *scope) {
  Dwarf_Attribute attr;
  Dwarf_Word line;
  if (!dwarf_attr(scope, DW_AT_call_line, &attr) ||
      dwarf_formudata(&attr, &line) != 0 || line > 0x7fffffff)
    return 0;
  return (int)line;
}

static size_t lookup(struct symbolizer *s, uint64_t ip, bool return_address,
                     struct native_frame *out, size_t max);

size_t symbolize(struct symbolizer *s, uint64_t ip, bool return_address,
                 struct native_frame *out, size_t max) {
  uint64_t key = ip * 2 + return_address;
  struct cached_symbol *c =
      &s->cache[(key * 0x9E3779B97F4A7C15ull >> 52) % CACHE_SLOTS];
  if (key && c->key == key && c->count <= max) {
    for (size_t i = 0; i < c->count; i++)
      frame_copy(&out[i], &c->frames[i]);
    return c->count;
  }
  size_t n = lookup(s, ip, return_address, out, max);
  struct native_frame *copy = calloc(n, sizeof(*copy));
  if (copy) {
    for (size_t j = 0; j < c->count; j++)
      native_frame_clear(&c->frames[j]);
    free(c->frames);
    for (size_t i = 0; i < n; i++)
      frame_copy(&copy[i], &out[i]);
    *c = (struct cached_symbol){.key = key, .count = n, .frames = copy};
  }
  return n;
}

static size_t lookup(struct symbolizer *s, uint64_t ip, bool return_address,
                     struct native_frame *out, size_t max) {
  Dwarf_Addr addr = return_address && ip ? ip - 1 : ip;
  struct native_frame real = {.ip = ip}, *outer = &real;
  Dwfl_Module *mod = s->reported ? dwfl_addrmodule(s->dwfl, addr) : NULL;
  if (!mod) {
    out[0] = real;
    return 1;
  }
  Dwarf_Addr low = 0;
  const char *name =
      dwfl_module_info(mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
  outer->module = dup_or_null(name);
  Dwarf_Addr rel = ip;
  if (dwfl_module_relocate_address(mod, &rel) >= 0)
    outer->module_offset = rel;
  else
    outer->module_offset = ip - low;

  GElf_Off off = 0;
  GElf_Sym sym;
  const char *function =
      dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
  outer->function = function_name(function);
  outer->offset = off + (ip - addr);
  Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
  int lineno = 0;
  const char *file =
      line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;

  /* Functions inlined here, innermost first: each is a frame of its own,
   * and each one's call site is the location in the frame outside it. */
  Dwarf_Addr bias = 0;
  Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);
  Dwarf_Die *scopes = NULL;
  int nscopes = cu ? dwarf_getscopes(cu, addr - bias, &scopes) : 0;
  size_t n = 0;
  for (int i = 0; i < nscopes && n + 1 < max; i++) {
    if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
      continue;
    struct native_frame *f = &out[n++];
    *f = (struct native_frame){.ip = ip, .inlined = true};
    f->function = dup_or_null(dwarf_diename(&scopes[i]));
    f->module = dup_or_null(name);
    f->module_offset = outer->module_offset;
    f->file = dup_or_null(file);
    f->line = lineno;
    file = call_file(cu, &scopes[i]);
    lineno = call_line(&scopes[i]);
  }
  free(scopes);
  real.file = dup_or_null(file);
  real.line = lineno;
  out[n] = real;
  return n + 1;
}
