#!/bin/sh
# Each public header must compile alone, as C99 and as C++, warning-free.
set -eu
srcdir=${top_srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for header in "$srcdir"/include/*.h; do
  name=$(basename "$header")
  printf '#include <%s>\nint perpetuo_header_check_dummy;\n' "$name" > "$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  if ! ${CC:-cc} -std=c99 -pedantic -Wall -Wextra -Werror -I"$srcdir/include" \
      -c "$tmp/t.c" -o "$tmp/t.o"; then
    echo "check-headers: $name does not compile alone as C99" >&2
    status=1
  fi
  if ! ${CXX:-c++} -std=c++11 -pedantic -Wall -Wextra -Werror -I"$srcdir/include" \
      -c "$tmp/t.cpp" -o "$tmp/t.o"; then
    echo "check-headers: $name does not compile alone as C++" >&2
    status=1
  fi
  # Only <stddef.h> and <stdint.h> may be included.
  if grep '^#include' "$header" | grep -v -e '<stddef.h>' -e '<stdint.h>' >&2; then
    echo "check-headers: $name includes more than <stddef.h> and <stdint.h>" >&2
    status=1
  fi
done
[ "$status" = 0 ] && echo "check-headers: public headers compile alone as C99 and C++"
exit $status
