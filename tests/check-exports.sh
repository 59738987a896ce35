#!/bin/sh
# The exported symbols of the built libperpetuo.so must be exactly the names
# in libperpetuo.sym, and every function the public header declares must be
# among them: a symbol cannot appear or disappear without the version script
# saying so.
set -eu
srcdir=${top_srcdir:-.}
lib=${top_builddir:-.}/libperpetuo/.libs/libperpetuo.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$lib" ]; then
  echo "check-exports: $lib was not built" >&2
  exit 1
fi

sed -n 's/^[[:space:]]*\(perpetuo_[a-z0-9_]*\);.*/\1/p' \
  "$srcdir/libperpetuo/libperpetuo.sym" | sort -u > "$tmp/listed"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ { sub(/@.*/, "", $3); print $3 }' |
  sort -u > "$tmp/exported"
sed -n 's/^PERPETUO_EXPORT.*[ *]\(perpetuo_[a-z0-9_]*\)(.*/\1/p' \
  "$srcdir/include/perpetuo.h" | sort -u > "$tmp/declared"
# A declaration may wrap after the return type.
sed -n 's/^\(perpetuo_[a-z0-9_]*\)(.*/\1/p' "$srcdir/include/perpetuo.h" >> "$tmp/declared"
sort -u -o "$tmp/declared" "$tmp/declared"

status=0
if ! diff -u "$tmp/listed" "$tmp/exported" > "$tmp/diff1"; then
  echo "check-exports: the library's exports differ from libperpetuo.sym:" >&2
  cat "$tmp/diff1" >&2
  status=1
fi
if ! diff -u "$tmp/listed" "$tmp/declared" > "$tmp/diff2"; then
  echo "check-exports: perpetuo.h declares other functions than libperpetuo.sym lists:" >&2
  cat "$tmp/diff2" >&2
  status=1
fi
if ! nm -D --defined-only "$lib" | grep -q ' PERPETUO_1.0$'; then
  echo "check-exports: the version node PERPETUO_1.0 is missing" >&2
  status=1
fi
n=$(wc -l < "$tmp/exported")
[ "$status" = 0 ] && echo "check-exports: $n symbols, all listed in PERPETUO_1.0 and declared in perpetuo.h"
exit $status
