"""The implementation of the low-level API under the package. Everything
else in the package reaches it as `_backend.api`; `_backend.name` says which
it is:

- "c": the C extension `perpetuo._perpetuo` (CPython);
- "cffi": `perpetuo._cffi_backend`, the same API through cffi over
  libperpetuo.so.1 (PyPy, or a CPython without the extension).

PERPETUO_BACKEND=c or =cffi forces one; unset (or empty), the C extension
where it imports, cffi otherwise.
"""

import os

BACKENDS = ("c", "cffi")

_choice = os.environ.get("PERPETUO_BACKEND", "")
if _choice and _choice not in BACKENDS:
    raise ImportError(
        f"PERPETUO_BACKEND must be 'c' (the C extension) or 'cffi', or unset "
        f"(the C extension where it imports, cffi otherwise), not {_choice!r}")

if _choice == "c":
    from . import _perpetuo as api
    name = "c"
elif _choice == "cffi":
    from . import _cffi_backend as api
    name = "cffi"
else:
    try:
        from . import _perpetuo as api
        name = "c"
    except ImportError as c_error:
        try:
            from . import _cffi_backend as api
        except ImportError as cffi_error:
            raise ImportError(
                f"perpetuo has no backend here: the C extension does not "
                f"import ({c_error}), nor does the cffi backend "
                f"({cffi_error})") from cffi_error
        name = "cffi"

__all__ = ["api", "name", "BACKENDS"]
