"""Builds perpetuo's C extension, in one of two ways.

- Against an installed libperpetuo, found with pkg-config (the default):
  `pip install ./bindings/python`.
- Self-contained, with PERPETUO_BUNDLE=1: libperpetuo and the watcher are
  built from this source tree (../..) and shipped inside the package, as
  perpetuo/_lib/libperpetuo.so.1 and perpetuo/_watcher/perpetuo; the
  extension finds the library through an $ORIGIN rpath. This makes the wheel
  (tools/build-wheel.sh).
"""

import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
SRC = os.path.join("src", "perpetuo")
BUNDLE = os.environ.get("PERPETUO_BUNDLE") == "1"


def fail(sentence):
    sys.exit(f"perpetuo: {sentence}")


def pkg_config(flag):
    try:
        out = subprocess.run(["pkg-config", flag, "perpetuo"], check=True,
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        fail("pkg-config is missing; install it, or build a self-contained "
             "package with PERPETUO_BUNDLE=1")
    except subprocess.CalledProcessError:
        fail("libperpetuo was not found by pkg-config: install it (make "
             "install), or point PKG_CONFIG_PATH at its perpetuo.pc, or build "
             "a self-contained package with PERPETUO_BUNDLE=1")
    return shlex.split(out)


class BuildExt(build_ext):
    """In bundle mode, first builds libperpetuo and the watcher."""

    def run(self):
        if BUNDLE:
            self.build_bundle()
        super().run()

    def build_bundle(self):
        if not os.path.exists(os.path.join(TOP, "configure.ac")):
            fail(f"PERPETUO_BUNDLE=1 needs the perpetuo source tree around "
                 f"bindings/python; {TOP} is not one")
        if not os.path.exists(os.path.join(TOP, "configure")):
            subprocess.run([os.path.join(TOP, "autogen.sh")], check=True)
        tree = os.path.abspath(os.path.join(self.build_temp, "libperpetuo"))
        os.makedirs(tree, exist_ok=True)
        if not os.path.exists(os.path.join(tree, "Makefile")):
            subprocess.run([os.path.join(TOP, "configure"), "-q",
                            "--disable-python", "--prefix=/usr"],
                           cwd=tree, check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(["make", "-j", jobs, "libperpetuo/libperpetuo.la",
                        "libperpetuo/watcher/perpetuo"], cwd=tree, check=True)
        package = os.path.join(self.build_lib, "perpetuo")
        lib_dir = os.path.join(package, "_lib")
        watcher_dir = os.path.join(package, "_watcher")
        os.makedirs(lib_dir, exist_ok=True)
        os.makedirs(watcher_dir, exist_ok=True)
        libs = os.path.join(tree, "libperpetuo", ".libs")
        # The file the SONAME names, dereferenced: a wheel holds no links.
        shutil.copy(os.path.join(libs, "libperpetuo.so.1"),
                    os.path.join(lib_dir, "libperpetuo.so.1"))
        shutil.copy(os.path.join(tree, "libperpetuo", "watcher", "perpetuo"),
                    os.path.join(watcher_dir, "perpetuo"))
        for ext in self.extensions:
            ext.include_dirs.append(os.path.join(TOP, "include"))
            ext.extra_link_args += [f"-L{lib_dir}", "-l:libperpetuo.so.1",
                                    "-Wl,-rpath,$ORIGIN/_lib"]


def extension():
    ext = Extension(
        "perpetuo._perpetuo",
        sources=[os.path.join(SRC, f) for f in
                 ("_module.c", "_tracker.c", "_trio.c", "_layout.c",
                  "_asyncio.c", "_heartbeat.c", "_trio_dispatch.c")],
        depends=[os.path.join(SRC, f) for f in ("_perpetuo.h", "_layout.h")],
        # The region's formats, which the extension writes.
        include_dirs=[os.path.join(TOP, "libperpetuo")],
        extra_compile_args=["-std=gnu11", "-fvisibility=hidden"],
    )
    if not BUNDLE and not {"sdist", "egg_info", "dist_info"} & set(sys.argv):
        for flag in pkg_config("--cflags"):
            if flag.startswith("-I"):
                ext.include_dirs.append(flag[2:])
            else:
                ext.extra_compile_args.append(flag)
        ext.extra_link_args += pkg_config("--libs")
        # Found where pkg-config found it, also at run time.
        for flag in pkg_config("--libs-only-L"):
            ext.extra_link_args.append("-Wl,-rpath," + flag[2:])
    return ext


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExt})
