"""Ownership of a library handle: idempotent ``close()``, context manager,
``__del__`` as a backstop (the wasmtime-py ``Managed`` pattern)."""

from __future__ import annotations

from typing import Any, Optional

from ._errors import ClosedError


class Owner:
    """Owns one handle; subclasses implement ``_delete`` (the matching
    ``_free``). ``close()`` frees it once; later uses raise ``ClosedError``.

    The behaviour only: a subclass stores ``_ptr`` (and ``__weakref__``)
    itself, as ``Managed`` does for most handles. ``Breaker`` declares its
    own because its first base, the accelerator's C type
    (``circuit._speedups.FastEnter``), has an instance layout of its own and
    two bases with slots cannot be combined."""

    __slots__ = ()

    _ptr: Optional[int]

    def _delete(self, ptr: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _handle(self) -> int:
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        return int(ptr)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return getattr(self, "_ptr", None) is None

    def close(self) -> None:
        """Releases the handle. Safe to call more than once."""
        ptr = getattr(self, "_ptr", None)
        if ptr is not None:
            self._ptr = None  # type: ignore[misc]  # a subclass's slot
            self._delete(ptr)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class Managed(Owner):
    """An ``Owner`` storing its handle in a slot."""

    __slots__ = ("_ptr", "__weakref__")
