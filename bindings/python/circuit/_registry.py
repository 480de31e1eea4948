"""Registries of named breakers (B9) and their Prometheus text (B8)."""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from ctypes import byref, c_size_t, c_void_p
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import _ffi, _group
from ._breaker import Breaker, _new_config, _split_exclude
from ._clock import Clock
from ._config import Config
from ._errors import ConfigError, InvalidArgumentError
from ._managed import Managed

__all__ = ["Registry"]


def _name_arg(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"a breaker name must be a str, not {type(name).__name__}")
    raw = name.encode("utf-8", "surrogatepass")
    if not 1 <= len(raw) <= _ffi.NAME_MAX_LEN:
        raise InvalidArgumentError(
            f"a breaker name must be 1 to {_ffi.NAME_MAX_LEN} bytes of UTF-8 (got {len(raw)})"
        )
    return raw


def _check_limits(max_breakers: int, evict_after_idle_sweeps: int) -> None:
    for what, v, hi in (
        ("max_breakers", max_breakers, _ffi.U64_MAX),
        ("evict_after_idle_sweeps", evict_after_idle_sweeps, _ffi.U32_MAX),
    ):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be an int, not {type(v).__name__}")
        if not 0 <= v <= hi:
            raise ConfigError(f"{what} must be between 0 and {hi} (got {v})")


_live: "weakref.WeakSet[Registry]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork stays held for ever in the
    # child (that thread does not exist there): give every registry a new one.
    for r in list(_live):
        r._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Registry(Managed):
    """Named breakers, created on first use, with per-name configs.

        registry = circuit.Registry(consecutive_failures=5)   # defaults
        registry.set_config("payments", circuit.Config(consecutive_failures=2))
        payments = registry["payments"]                      # a Breaker
        text = registry.prometheus()

    ``max_breakers`` caps the number of breakers (``LimitExceededError``
    beyond; 0 = one million); with ``evict_after_idle_sweeps=n``, a breaker
    found idle by ``n`` consecutive ``sweep_idle()`` calls is removed.
    ``exclude`` and ``failure_if`` apply to every ``Breaker`` this registry
    hands out. Thread-safe: lookups of existing names are lock-free.

    Each lookup returns the same ``Breaker`` object for a name while the
    caller keeps it; ``close()`` of the registry leaves breakers already
    handed out working. ``Segment.registry()`` makes a registry whose
    breakers are a host-shared segment's.
    """

    __slots__ = ("_defaults", "_clock", "_configs", "_wrappers", "_lock", "_kw", "_segment")

    def __init__(
        self,
        defaults: Optional[Config] = None,
        *,
        max_breakers: int = 0,
        evict_after_idle_sweeps: int = 0,
        clock: Optional[Clock] = None,
        exclude: Any = (),
        failure_if: Optional[Callable[[Any], bool]] = None,
        **default_options: Any,
    ) -> None:
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a circuit clock, not {type(clock).__name__}")
        _check_limits(max_breakers, evict_after_idle_sweeps)
        _split_exclude(exclude)  # validate now
        own = None
        if defaults is None:
            defaults = own = Config(**default_options)
        elif not isinstance(defaults, Config):
            raise TypeError(f"defaults must be a circuit.Config, not {type(defaults).__name__}")
        elif default_options:
            defaults = own = defaults.replace(**default_options)
        self._start(dict(defaults.options), clock, exclude, failure_if, None)
        try:
            out = c_void_p()
            rc = _ffi.lib.registry_new(
                defaults._handle(),
                max_breakers,
                evict_after_idle_sweeps,
                None if clock is None else clock._handle(),
                byref(out),
            )
            _ffi.check(rc, "circuit_registry_new")
        finally:
            if own is not None:
                own.close()
        self._ptr = _ffi.pointer(out)

    def _start(
        self,
        defaults: Dict[str, Any],
        clock: Optional[Clock],
        exclude: Any,
        failure_if: Optional[Callable[[Any], bool]],
        segment: Any,
    ) -> None:
        self._defaults = defaults
        self._clock = clock
        self._configs: Dict[str, Dict[str, Any]] = {}
        self._wrappers: "weakref.WeakValueDictionary[str, Breaker]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._kw = {"exclude": exclude, "failure_if": failure_if, "clock": clock}
        self._segment = segment
        _live.add(self)

    @classmethod
    def _on_segment(
        cls,
        segment: Any,
        defaults: Dict[str, Any],
        max_breakers: int,
        evict_after_idle_sweeps: int,
        exclude: Any,
        failure_if: Optional[Callable[[Any], bool]],
    ) -> "Registry":
        """A registry whose breakers live on ``segment`` (see
        ``Segment.registry``); ``defaults`` are the segment's options."""
        _check_limits(max_breakers, evict_after_idle_sweeps)
        out = c_void_p()
        rc = _ffi.lib.registry_new_on_segment(
            segment._handle(), max_breakers, evict_after_idle_sweeps, byref(out)
        )
        _ffi.check(rc, "circuit_registry_new_on_segment")
        r = cls.__new__(cls)
        # The segment object stays referenced while the registry lives.
        r._start(defaults, None, exclude, failure_if, segment)
        r._ptr = _ffi.pointer(out)
        return r

    def _delete(self, ptr: int) -> None:
        _ffi.lib.registry_free(ptr)

    def __repr__(self) -> str:
        if self.closed:
            return "Registry(<closed>)"
        return f"Registry({len(self)} breakers)"

    # ---- configs -------------------------------------------------------------------
    def set_config(self, name: str, config: Optional[Config] = None, **options: Any) -> None:
        """The config ``name`` gets when it is next created (an existing
        breaker keeps its config until removed)."""
        raw = _name_arg(name)
        own = None
        if config is None:
            config = own = Config(**options)
        elif not isinstance(config, Config):
            raise TypeError(f"config must be a circuit.Config, not {type(config).__name__}")
        elif options:
            config = own = config.replace(**options)
        try:
            rc = _ffi.lib.registry_set_config(self._handle(), raw, len(raw), config._handle())
            _ffi.check(rc, f"set_config({name!r})")
            self._configs[name] = dict(config.options)
        finally:
            if own is not None:
                own.close()

    def reconfigure(self, name: str, config: Optional[Config] = None, **options: Any) -> None:
        """Sets the config of ``name`` and puts it in force on the breaker of
        that name if one exists, keeping its state (see
        ``Breaker.reconfigure``); a breaker created later gets it too. With
        ``options`` alone, they change the name's current options. An error
        changes nothing."""
        raw = _name_arg(name)
        current = self._configs.get(name, self._defaults)
        config, own = _new_config(config, options, current)
        try:
            rc = _ffi.lib.registry_reconfigure(self._handle(), raw, len(raw), config._handle())
            _ffi.check(rc, f"reconfigure({name!r})")
            self._configs[name] = dict(config.options)
            with self._lock:
                cached = self._wrappers.get(name)
            if cached is not None:
                cached._took(config.options)
        finally:
            if own is not None:
                own.close()

    # ---- group guards --------------------------------------------------------------
    def set_group(
        self,
        group: str,
        *,
        max_open: Optional[int] = None,
        max_open_fraction: Optional[float] = None,
    ) -> None:
        """Creates the group ``group`` (or changes its limit): at most
        ``max_open`` members, or ``max_open_fraction`` (0.0 to 1.0, rounded
        down) of them, OPEN or HALF_OPEN at once. A trip past it is refused:
        the breaker stays CLOSED and listeners get a ``SHADOW_TRIP`` event.
        Breakers join with ``join_group``."""
        _group.set_group(self._handle(), group, max_open, max_open_fraction)

    def join_group(self, name: str, group: str) -> None:
        """Puts the breaker ``name`` in ``group`` (set before with
        ``set_group``; ``NotFoundError`` otherwise) when it is next created;
        an existing breaker stays as it is until removed."""
        _group.join_group(self._handle(), _name_arg(name), group)

    def group(self, group: str) -> Optional[_group.GroupStats]:
        """The numbers of ``group`` now, or ``None`` if there is no such
        group."""
        return _group.stats(self._handle(), group)

    # ---- lookups -------------------------------------------------------------------
    def _wrap(self, name: str, ptr: int) -> Breaker:
        with self._lock:
            cached = self._wrappers.get(name)
            if cached is not None and cached._ptr == ptr:
                _ffi.lib.breaker_free(ptr)  # the cached wrapper holds its own reference
                return cached
            options = self._configs.get(name, self._defaults)
            b = Breaker._from_reference(
                ptr, name, options=options, **self._kw
            )
            self._wrappers[name] = b
            return b

    def breaker(self, name: str) -> Breaker:
        """The breaker named ``name``, created (from its config or the
        defaults) if missing."""
        raw = _name_arg(name)
        out = c_void_p()
        rc = _ffi.lib.registry_get_or_create(self._handle(), raw, len(raw), byref(out))
        _ffi.check(rc, f"breaker {name!r}")
        return self._wrap(name, _ffi.pointer(out))

    __getitem__ = breaker

    def get(self, name: str) -> Optional[Breaker]:
        """The breaker named ``name`` if it exists, else ``None``."""
        raw = _name_arg(name)
        out = c_void_p()
        rc = _ffi.lib.registry_get(self._handle(), raw, len(raw), byref(out))
        if rc == _ffi.RESULT_NOT_FOUND:
            return None
        _ffi.check(rc, f"breaker {name!r}")
        return self._wrap(name, _ffi.pointer(out))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        raw = _name_arg(name)
        out = c_void_p()
        rc = _ffi.lib.registry_get(self._handle(), raw, len(raw), byref(out))
        if rc == _ffi.RESULT_OK:
            _ffi.lib.breaker_free(out.value)
            return True
        if rc == _ffi.RESULT_NOT_FOUND:
            return False
        raise _ffi.error(rc, f"breaker {name!r}")

    def remove(self, name: str) -> bool:
        """Removes ``name`` (``False`` if absent). Holders of the breaker keep
        a working breaker the registry no longer lists."""
        raw = _name_arg(name)
        rc = _ffi.lib.registry_remove(self._handle(), raw, len(raw))
        if rc == _ffi.RESULT_NOT_FOUND:
            return False
        _ffi.check(rc, f"remove({name!r})")
        with self._lock:
            self._wrappers.pop(name, None)
        return True

    def __len__(self) -> int:
        n = c_size_t()
        _ffi.check(_ffi.lib.registry_len(self._handle(), byref(n)), "circuit_registry_len")
        return n.value

    def _walk(self, want_breakers: bool) -> List[Tuple[str, Optional[int]]]:
        it = c_void_p()
        _ffi.check(_ffi.lib.registry_iter_new(self._handle(), byref(it)), "registry iteration")
        out: List[Tuple[str, Optional[int]]] = []
        try:
            name = c_void_p()
            n = c_size_t()
            b = c_void_p()
            while True:
                rc = _ffi.lib.registry_iter_next(
                    it, byref(name), byref(n), byref(b) if want_breakers else None
                )
                if rc == _ffi.RESULT_EMPTY:
                    break
                _ffi.check(rc, "circuit_registry_iter_next")
                s = ctypes.string_at(_ffi.pointer(name), n.value).decode("utf-8", "replace")
                ref = _ffi.lib.breaker_retain(b.value) if want_breakers else None
                out.append((s, ref))
        finally:
            _ffi.lib.registry_iter_free(it)
        return out

    def names(self) -> List[str]:
        """The names of the breakers now, sorted."""
        return [n for n, _ in self._walk(False)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> List[Tuple[str, Breaker]]:
        """(name, breaker) pairs for the breakers now, sorted by name."""
        return [(n, self._wrap(n, ref or 0)) for n, ref in self._walk(True)]

    def sweep_idle(self) -> int:
        """One idle-eviction sweep; the number of breakers it removed."""
        n = c_size_t()
        _ffi.check(_ffi.lib.registry_sweep_idle(self._handle(), byref(n)), "sweep_idle")
        return n.value

    # ---- observation ---------------------------------------------------------------
    def prometheus(self) -> str:
        """Every breaker's metrics in the Prometheus text exposition format
        (0.0.4). The GIL is released while the library renders."""
        ptr = self._handle()
        n = c_size_t()
        rc = _ffi.lib.registry_render_prometheus(ptr, None, 0, byref(n))
        if rc == _ffi.RESULT_OK:
            return ""
        for _ in range(3):
            if rc != _ffi.RESULT_BUFFER_TOO_SMALL:
                _ffi.check(rc, "circuit_registry_render_prometheus")
            buf = ctypes.create_string_buffer(n.value + 1)
            rc = _ffi.lib.registry_render_prometheus(ptr, buf, len(buf), byref(n))
            if rc == _ffi.RESULT_OK:
                return buf.raw[: n.value].decode("utf-8")
        raise _ffi.error(rc, "circuit_registry_render_prometheus")

    def add_listener(self, fn: Callable[[Any], Any]) -> Any:
        """Calls ``fn(event)`` on every transition of every breaker of the
        registry (``event.name`` tells which). See ``Breaker.add_listener``."""
        from . import _events

        return _events.add_listener(
            self, _ffi.lib.registry_add_listener, _ffi.lib.registry_remove_listener, fn
        )

    def on_transition(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorator form of ``add_listener``."""
        fn.listener = self.add_listener(fn)  # type: ignore[attr-defined]
        return fn

    def sync(self, url: str, namespace: str) -> Any:
        """Starts fleet sync of this registry through Redis at ``url``
        (``redis://[user[:password]@]host[:port][/db]``, or several such URLs
        separated by commas for a cluster) in the fleet namespace
        ``namespace`` (``[A-Za-z0-9._-]{1,64}``). Returns a running
        ``FleetSync``; an unreachable Redis is not an error (its state is
        DEGRADED until Redis answers). A bad URL or namespace raises
        ``ConfigError`` (never showing the password)."""
        from ._sync import FleetSync

        return FleetSync(self, url, namespace)

    def events(self, capacity: int = _ffi.EVENT_QUEUE_DEFAULT_CAPACITY) -> Any:
        """A queue receiving the transitions of every breaker of the registry."""
        from . import _events

        return _events.new_queue(self, _ffi.lib.registry_event_queue_new, capacity)
