dnl The one place where perpetuo's version numbers live.
dnl
dnl Package version: major.minor.patch of the release.
m4_define([PERPETUO_MAJOR], [1])
m4_define([PERPETUO_MINOR], [2])
m4_define([PERPETUO_PATCH], [0])
m4_define([PERPETUO_VERSION_STRING], [PERPETUO_MAJOR.PERPETUO_MINOR.PERPETUO_PATCH])
dnl
dnl libtool -version-info current:revision:age of libperpetuo.so. The SONAME is
dnl libperpetuo.so.(current - age), and must stay libperpetuo.so.1.
dnl Before each release, in this order:
dnl  1. the library's source changed at all:        revision += 1
dnl  2. interfaces were added (a new version node):  current += 1, revision = 0, age += 1
dnl  3. interfaces were removed or changed:          never. That would break the ABI
dnl     promise in docs/ABI.md; add a new symbol (foo2, foo_ex) instead.
m4_define([PERPETUO_LT_CURRENT], [3])
m4_define([PERPETUO_LT_REVISION], [0])
m4_define([PERPETUO_LT_AGE], [2])
