"""The implementation of the low-level API under the package: the C
extension `perpetuo._perpetuo`. Everything else in the package reaches it as
`_backend.api`, so that another backend can stand in for it."""

from . import _perpetuo as api

__all__ = ["api"]
