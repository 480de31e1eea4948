"""Group guards (``Registry.set_group``): at most so many breakers of a
group OPEN at once. A trip past the limit is refused by the library: the
breaker stays CLOSED and its listeners get an event with reason
``Reason.SHADOW_TRIP`` (from CLOSED to CLOSED), counted in ``GroupStats``
and in the Prometheus text (``circuit_group_refused_trips_total``)."""

from __future__ import annotations

from ctypes import byref, sizeof
from dataclasses import dataclass
from typing import Optional, Union

from . import _ffi

__all__ = ["GroupStats"]


@dataclass(frozen=True)
class GroupStats:
    name: str
    #: the limit: an ``int`` count of members, or a ``float`` fraction of them
    limit: Union[int, float]
    members: int  #: breakers in the group now
    open: int  #: members OPEN or HALF_OPEN now
    max_open: int  #: most members that may be OPEN or HALF_OPEN at once now
    refused_trips: int  #: trips the guard refused (shadow trips)


def _group_arg(group: str) -> bytes:
    from ._registry import _name_arg

    return _name_arg(group)


def set_group(
    registry_ptr: int, group: str, max_open: Optional[int], max_open_fraction: Optional[float]
) -> None:
    raw = _group_arg(group)
    if (max_open is None) == (max_open_fraction is None):
        raise TypeError("give exactly one of max_open and max_open_fraction")
    if max_open is not None:
        if isinstance(max_open, bool) or not isinstance(max_open, int):
            raise TypeError(f"max_open must be an int, not {type(max_open).__name__}")
        if not 0 <= max_open <= _ffi.U32_MAX:
            from ._errors import InvalidArgumentError

            raise InvalidArgumentError(f"max_open must be between 0 and {_ffi.U32_MAX}")
        rc = _ffi.lib.registry_set_group_count(registry_ptr, raw, len(raw), max_open)
    else:
        if isinstance(max_open_fraction, bool) or not isinstance(max_open_fraction, (int, float)):
            raise TypeError(
                f"max_open_fraction must be a float, not {type(max_open_fraction).__name__}"
            )
        rc = _ffi.lib.registry_set_group_fraction(
            registry_ptr, raw, len(raw), float(max_open_fraction)
        )
    _ffi.check(rc, f"set_group({group!r})")


def join_group(registry_ptr: int, name: bytes, group: str) -> None:
    raw = _group_arg(group)
    rc = _ffi.lib.registry_join_group(registry_ptr, name, len(name), raw, len(raw))
    _ffi.check(rc, f"join_group({group!r})")


def stats(registry_ptr: int, group: str) -> Optional[GroupStats]:
    raw = _group_arg(group)
    s = _ffi.circuit_group_stats()
    s.struct_size = sizeof(s)
    rc = _ffi.lib.registry_group_stats(registry_ptr, raw, len(raw), byref(s))
    if rc == _ffi.RESULT_NOT_FOUND:
        return None
    _ffi.check(rc, f"group({group!r})")
    limit: Union[int, float] = (
        int(s.limit) if s.limit_kind == _ffi.GROUP_LIMIT_COUNT else float(s.limit)
    )
    return GroupStats(
        name=group,
        limit=limit,
        members=s.members,
        open=s.open,
        max_open=s.max_open,
        refused_trips=s.refused_trips,
    )
