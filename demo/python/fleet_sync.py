"""Fleet sync for the Python offer service: shares the registry's breakers
with the other instances through Redis (the library's sync, SYNC.md).

The Python binding does not wrap the sync functions (yet), so this calls
``circuit_sync_start`` / ``_status`` / ``_last_error`` / ``_stop`` /
``_free`` of the same ``libcircuit.so`` through ctypes, with the registry's
handle. A library without them means sync is reported unavailable.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, byref, c_char_p, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any, Dict

import circuit

STATES = {0: "connected", 1: "degraded", 2: "stopped"}


class SyncStatus(Structure):
    """``circuit_sync_status`` (size-tagged: the library fills at most
    ``struct_size`` bytes)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_uint32),
        ("published", c_uint64),
        ("applied", c_uint64),
        ("stale_ignored", c_uint64),
        ("malformed_ignored", c_uint64),
        ("unknown_ignored", c_uint64),
        ("refused", c_uint64),
        ("reconnects", c_uint64),
        ("pending", c_uint64),
    ]


class NoSync:
    enabled = False

    def __init__(self, why: str) -> None:
        self.why = why

    def status(self) -> Dict[str, Any]:
        return {"enabled": False, "status": self.why}

    def stop(self) -> None:
        pass


class AbiSync:
    enabled = True

    def __init__(self, lib: ctypes.CDLL, handle: int, registry: Any) -> None:
        self.lib = lib
        self.handle = handle
        self.registry = registry  # the worker holds its own reference; this keeps ours

    def status(self) -> Dict[str, Any]:
        if not self.handle:
            return {"enabled": True, "status": "stopped"}
        st = SyncStatus(struct_size=ctypes.sizeof(SyncStatus))
        if self.lib.circuit_sync_status(self.handle, byref(st)) != 0:
            return {"enabled": True, "status": "status failed"}
        text = STATES.get(st.state, f"state {st.state}")
        if st.state == 1:
            buf = ctypes.create_string_buffer(256)
            n = c_size_t()
            if self.lib.circuit_sync_last_error(self.handle, buf, len(buf), byref(n)) == 0 and n.value:
                text += ": " + buf.value.decode("utf-8", "replace")
        return {"enabled": True, "status": text, "published": st.published, "applied": st.applied,
                "refused": st.refused, "reconnects": st.reconnects}

    def stop(self) -> None:
        if self.handle:
            self.lib.circuit_sync_stop(self.handle)
            self.lib.circuit_sync_free(self.handle)
            self.handle = 0


def start(registry: "circuit.Registry", url: str, namespace: str, instance: str) -> Any:
    if not url:
        return NoSync("off")
    lib = ctypes.CDLL(circuit.library_path())
    try:
        f_start = lib.circuit_sync_start
        lib.circuit_sync_status.argtypes = [c_void_p, POINTER(SyncStatus)]
        lib.circuit_sync_status.restype = c_uint32
        lib.circuit_sync_last_error.argtypes = [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)]
        lib.circuit_sync_last_error.restype = c_uint32
        lib.circuit_sync_stop.argtypes = [c_void_p]
        lib.circuit_sync_stop.restype = c_uint32
        lib.circuit_sync_free.argtypes = [c_void_p]
        lib.circuit_sync_free.restype = None
    except AttributeError:
        return NoSync("unavailable: the library has no sync ABI")
    f_start.argtypes = [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_void_p)]
    f_start.restype = c_uint32
    u, ns = url.encode(), namespace.encode()
    out = c_void_p()
    rc = f_start(registry._handle(), u, len(u), ns, len(ns), byref(out))
    if rc != 0:
        buf = ctypes.create_string_buffer(512)
        n = c_size_t()
        lib.circuit_last_error.argtypes = [c_char_p, c_size_t, POINTER(c_size_t)]
        lib.circuit_last_error.restype = c_uint32
        lib.circuit_last_error(buf, len(buf), byref(n))
        return NoSync(f"failed: {buf.value.decode('utf-8', 'replace')}")
    return AbiSync(lib, out.value, registry)
