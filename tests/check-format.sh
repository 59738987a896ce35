#!/bin/sh
# The C sources follow the committed .clang-format.
set -eu
srcdir=${top_srcdir:-.}
if [ -z "${CLANG_FORMAT:-}" ]; then
  echo "check-format: SKIP: clang-format was not found at configure time (install clang-format)"
  exit 77
fi
cd "$srcdir"
files=$(find include libperpetuo examples tests bench bindings/python/src -name '*.[ch]' | sort)
if "$CLANG_FORMAT" --dry-run -Werror $files; then
  echo "check-format: $(echo "$files" | wc -l) files formatted as .clang-format says"
else
  echo "check-format: run clang-format -i on the files above" >&2
  exit 1
fi
