#!/bin/sh
# Generates ./configure from a git checkout (a release tarball has it).
set -e
cd "$(dirname "$0")"
mkdir -p m4
exec autoreconf --force --install --warnings=all
