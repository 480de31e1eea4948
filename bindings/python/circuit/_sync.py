"""Fleet sync (DESIGN.md section 7): a registry's breakers share their
transitions with other instances through Redis.

The library runs the worker (its own threads); the call path of the
registry's breakers is unchanged and never waits on Redis. When Redis is
unreachable the status is DEGRADED and breakers decide alone, catching up
when it answers. After ``os.fork()`` the child starts its own worker on its
first transition.
"""

from __future__ import annotations

import ctypes
import enum
from ctypes import byref, c_size_t, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Optional

from . import _ffi
from ._errors import ConfigError
from ._managed import Managed
from ._types import Seconds, to_ns

__all__ = ["FleetSync", "SyncState", "SyncStatus"]


class SyncState(enum.IntEnum):
    CONNECTED = _ffi.SYNC_CONNECTED  #: subscribed, reconciled, writes accepted
    DEGRADED = _ffi.SYNC_DEGRADED  #: deciding alone; catches up when Redis is back
    STOPPED = _ffi.SYNC_STOPPED  #: stopped by ``stop()``


@dataclass(frozen=True)
class SyncStatus:
    state: SyncState
    published: int  #: local transitions and operator actions written to Redis
    applied: int  #: remote states applied to local breakers
    stale_ignored: int
    malformed_ignored: int
    unknown_ignored: int
    refused: int  #: writes the server refused; its record was adopted instead
    reconnects: int
    pending: int  #: local transitions waiting to be written
    repaired: int  #: malformed records in Redis replaced by the write script
    votes: int  #: quorum votes below the quorum (the breaker opened here only)
    configs_applied: int  #: fleet config records (``circuit configure``) applied here
    configs_refused: int  #: fleet config records refused (invalid; nothing changed)


class FleetSync(Managed):
    """A running sync worker for one registry (``Registry.sync(url,
    namespace)``). ``stop()`` stops it (local breakers keep their states);
    ``close()`` stops and frees it. It keeps the registry alive."""

    __slots__ = ("_registry", "url", "namespace")

    def __init__(self, registry: Any, url: str, namespace: str) -> None:
        for what, v in (("url", url), ("namespace", namespace)):
            if not isinstance(v, str):
                raise TypeError(f"{what} must be a str, not {type(v).__name__}")
        u = url.encode("utf-8", "surrogatepass")
        n = namespace.encode("utf-8", "surrogatepass")
        out = c_void_p()
        rc = _ffi.lib.sync_start(registry._handle(), u, len(u), n, len(n), byref(out))
        if rc == _ffi.RESULT_INVALID_CONFIG:
            raise _ffi.error(rc, "fleet sync")
        _ffi.check(rc, "fleet sync")
        self._ptr = _ffi.pointer(out)
        self._registry = registry
        self.url = _redact(url)
        self.namespace = namespace

    def _delete(self, ptr: int) -> None:
        _ffi.lib.sync_free(ptr)

    def stop(self) -> None:
        """Stops the worker (joins its threads; the GIL is released meanwhile)."""
        _ffi.check(_ffi.lib.sync_stop(self._handle()), "circuit_sync_stop")

    def status(self) -> SyncStatus:
        s = _ffi.circuit_sync_stats()
        s.struct_size = sizeof(s)
        _ffi.check(_ffi.lib.sync_status(self._handle(), byref(s)), "circuit_sync_status")
        return SyncStatus(
            state=SyncState(s.state),
            published=s.published,
            applied=s.applied,
            stale_ignored=s.stale_ignored,
            malformed_ignored=s.malformed_ignored,
            unknown_ignored=s.unknown_ignored,
            refused=s.refused,
            reconnects=s.reconnects,
            pending=s.pending,
            repaired=s.repaired,
            votes=s.votes,
            configs_applied=s.configs_applied,
            configs_refused=s.configs_refused,
        )

    def set_fleet_policy(
        self,
        name: str,
        *,
        quorum_instances: int = 0,
        quorum_fraction: float = 0.0,
        window: Optional[Seconds] = None,
    ) -> None:
        """How a trip of the breaker ``name`` spreads to the fleet. Without
        ``window``: ``first`` (the default: the first instance to trip opens
        it everywhere). With ``window`` (seconds): a quorum: it opens
        fleet-wide only once at least ``quorum_instances`` instances, and at
        least ``quorum_fraction`` of the live instances, tripped within
        ``window``; until then an instance that tripped is open locally
        only. Bad numbers raise ``ConfigError`` and change nothing."""
        from ._registry import _name_arg

        raw = _name_arg(name)
        if isinstance(quorum_instances, bool) or not isinstance(quorum_instances, int):
            raise TypeError("quorum_instances must be an int")
        if not 0 <= quorum_instances <= _ffi.U32_MAX:
            raise ConfigError(f"quorum_instances must be between 0 and {_ffi.U32_MAX}")
        if isinstance(quorum_fraction, bool) or not isinstance(quorum_fraction, (int, float)):
            raise TypeError("quorum_fraction must be a float")
        window_ns = 0
        if window is not None:
            window_ns = to_ns(window, "window", ConfigError)
            if window_ns == 0:
                raise ConfigError("window must be positive (omit it for the `first` policy)")
        rc = _ffi.lib.sync_set_fleet_policy(
            self._handle(), raw, len(raw), quorum_instances, float(quorum_fraction), window_ns
        )
        _ffi.check(rc, f"set_fleet_policy({name!r})")

    @property
    def state(self) -> SyncState:
        return self.status().state

    @property
    def last_error(self) -> str:
        """The worker's last error (why it is DEGRADED), "" when none."""
        n = c_size_t()
        ptr = self._handle()
        rc = _ffi.lib.sync_last_error(ptr, None, 0, byref(n))
        if rc == _ffi.RESULT_OK:
            return ""
        for _ in range(3):
            if rc != _ffi.RESULT_BUFFER_TOO_SMALL:
                _ffi.check(rc, "circuit_sync_last_error")
            buf = ctypes.create_string_buffer(n.value + 1)
            rc = _ffi.lib.sync_last_error(ptr, buf, len(buf), byref(n))
            if rc == _ffi.RESULT_OK:
                return buf.raw[: n.value].decode("utf-8", "replace")
        raise _ffi.error(rc, "circuit_sync_last_error")

    def __repr__(self) -> str:
        if self.closed:
            return "FleetSync(<closed>)"
        return f"FleetSync({self.url!r}, {self.namespace!r}, {self.state.name.lower()})"


def _redact(url: str) -> str:
    """The URL without a password, for repr()."""
    import re

    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)

