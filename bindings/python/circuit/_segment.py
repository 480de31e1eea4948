"""Host-shared segments: breakers shared by every process of the host that
opens the same segment (a file under ``/dev/shm`` or a path), through the C
ABI's ``circuit_segment_*`` functions. A segment's breaker is an ordinary
``Breaker``; a registry on a segment (``Segment.registry``) is an ordinary
``Registry``."""

from __future__ import annotations

from ctypes import byref, c_void_p
from typing import Any, Callable, Optional

from . import _ffi
from ._breaker import Breaker, _split_exclude
from ._config import Config
from ._managed import Managed
from ._registry import Registry


class Segment(Managed):
    """A mapped host-shared segment.

    ``path_or_name``: a name (1-200 characters of ``A-Z a-z 0-9 . _ -``)
    opens ``/dev/shm/circuit.<name>``; a string with a ``/`` is a file path.
    Every process must open it with the same config (another one raises
    ``CircuitError`` with code ``CIRCUIT_RESULT_SEGMENT_INVALID``),
    ``capacity`` (breaker names) and ``stripes`` (process counter stripes
    per breaker); 0 takes the library's defaults. ``mode`` (0: ``0o600``)
    is the new file's mode; an existing file granting more is refused.

    Works after ``os.fork()`` (the mapping is shared with the child) and in
    processes started with ``spawn`` (open the segment again there).
    """

    __slots__ = ("_options", "_kw")

    def __init__(
        self,
        path_or_name: str,
        config: Optional[Config] = None,
        *,
        capacity: int = 0,
        stripes: int = 0,
        mode: int = 0,
        exclude: Any = (),
        failure_if: Optional[Callable[[Any], bool]] = None,
        **options: Any,
    ) -> None:
        if not isinstance(path_or_name, str):
            raise TypeError(f"path_or_name must be a str, not {type(path_or_name).__name__}")
        for what, v in (("capacity", capacity), ("stripes", stripes), ("mode", mode)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{what} must be an int, not {type(v).__name__}")
            if not 0 <= v <= _ffi.U32_MAX:
                raise ValueError(f"{what} must be between 0 and {_ffi.U32_MAX} (got {v})")
        _split_exclude(exclude)
        own = None
        if config is None:
            config = own = Config(**options)
        elif not isinstance(config, Config):
            raise TypeError(f"config must be a circuit.Config, not {type(config).__name__}")
        elif options:
            config = own = config.replace(**options)
        self._options = dict(config.options)
        self._kw = {"exclude": exclude, "failure_if": failure_if}
        raw = path_or_name.encode("utf-8", "surrogatepass")
        try:
            out = c_void_p()
            rc = _ffi.lib.segment_open(
                raw, len(raw), config._handle(), capacity, stripes, mode, byref(out)
            )
            _ffi.check(rc, f"segment {path_or_name!r}")
        finally:
            if own is not None:
                own.close()
        self._ptr = _ffi.pointer(out)

    def _delete(self, ptr: int) -> None:
        _ffi.lib.segment_free(ptr)

    def __repr__(self) -> str:
        return "Segment(<closed>)" if self.closed else "Segment()"

    def breaker(self, name: str) -> Breaker:
        """The breaker ``name`` (1-119 bytes of UTF-8) of this segment: its
        state, deadline, window and counters are shared by every process
        that opens this name here; its listeners stay in this process. It
        keeps the segment mapped after ``close()``."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        raw = name.encode("utf-8", "surrogatepass")
        out = c_void_p()
        rc = _ffi.lib.segment_breaker(self._handle(), raw, len(raw), byref(out))
        _ffi.check(rc, f"breaker {name!r}")
        return Breaker._from_reference(
            _ffi.pointer(out), name, options=self._options, **self._kw
        )

    def registry(self, *, max_breakers: int = 0, evict_after_idle_sweeps: int = 0) -> Registry:
        """A ``Registry`` whose breakers live on this segment: ``registry[name]``
        is the segment's breaker ``name``, shared by every process of the
        host that opens the segment (each with its own registry), so the
        host has one breaker per name. Listeners, ``prometheus()``,
        ``sweep_idle()`` and ``sync()`` work as for any registry;
        transitions won by another process reach this process's listeners
        with reason ``REMOTE``. Every breaker runs the segment's config:
        ``set_config`` with another config and ``reconfigure`` raise the
        library's ``ConfigError``; a segment with every slot taken raises
        ``LimitExceededError``. ``max_breakers`` and
        ``evict_after_idle_sweeps`` as for ``Registry``. The registry keeps
        this segment (and its mapping) alive; ``close()`` of the segment
        leaves it working."""
        return Registry._on_segment(
            self,
            dict(self._options),
            max_breakers,
            evict_after_idle_sweeps,
            self._kw["exclude"],
            self._kw["failure_if"],
        )
