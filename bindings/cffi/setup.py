"""perpetuo without a compiler: the package's own sources
(bindings/python/src/perpetuo, the same files the C extension's package
installs, not a copy) without the extension, so it runs on its cffi backend
over the libperpetuo.so.1 the system has (`make install`):
`pip install ./bindings/cffi`.
"""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.relpath(os.path.join(HERE, "..", "python", "src"), HERE)

setup(
    package_dir={"": SRC},
    packages=["perpetuo"],
    package_data={"perpetuo": ["py.typed", "*.pyi"]},
)
