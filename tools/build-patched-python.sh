#!/bin/sh
# Builds CPython 3.11 from Debian's own source package (the one Debian's
# python3.11 is built from) with perpetuo's GIL patch,
# patches/cpython-3.11-stall-counter.patch, which adds
# sys._set_stall_counter(). Everything stays in the build tree:
#
#   build/python-patched/apt/      a deb-src entry and its package lists, of
#                                  our own: the machine's apt setup is left
#                                  as it is
#   build/python-patched/src/      the unpacked source, patched, built in
#                                  place: src/python is the interpreter
#
# Prints the interpreter's path. Runs again only what is missing. Needs
# dpkg-dev (dpkg-source) and CPython's build dependencies (libffi-dev,
# libssl-dev, zlib1g-dev, ...), which tools/install-and-demo.sh installs.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
work=$top/build/python-patched
patch=$top/patches/cpython-3.11-stall-counter.patch
src=$work/src

if [ -x "$src/python" ] && [ "$src/.perpetuo-patch" -nt "$patch" ] &&
  [ "$src/.perpetuo-patch" -nt "$0" ] &&
  "$src/python" -c 'import sys; sys._set_stall_counter' 2>/dev/null; then
  echo "$src/python"
  exit 0
fi

apt=$work/apt
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$work/download"
cat >"$apt/sources.list.d/debian-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_own() {
  apt-get -q -o Dir::Etc::SourceList=/dev/null \
    -o Dir::Etc::SourceParts="$apt/sources.list.d" \
    -o Dir::State::Lists="$apt/lists" "$@"
}
if ! ls "$work"/download/python3.11_*.dsc >/dev/null 2>&1; then
  apt_own update >&2
  (cd "$work/download" && apt_own source --download-only python3.11) >&2
fi

rm -rf "$src"
dsc=$(ls "$work"/download/python3.11_*.dsc | tail -n 1)
dpkg-source -x "$dsc" "$src" >&2
(cd "$src" && patch -p1 --forward --quiet <"$patch") >&2
# No PGO or LTO: a plain build, about two minutes on two cores. Debian's
# security fixes make pyexpat use an internal header, which Debian's own
# build allows with a define the upstream build does not give it.
(cd "$src" && ./configure --quiet --prefix="$work/prefix" \
  --without-ensurepip &&
  sed -i 's|^MODULE_PYEXPAT_CFLAGS=|&-DPy_BUILD_CORE_MODULE |' Makefile &&
  make -j"$(nproc)" >/dev/null) >&2
"$src/python" -c 'import sys, ssl, ctypes, pyexpat; sys._set_stall_counter' >&2
touch "$src/.perpetuo-patch"
echo "$src/python"
