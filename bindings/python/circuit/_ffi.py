"""The C ABI of ``libcircuit``: loading, the ABI version check, and one table
declaring ``argtypes``/``restype`` for every function of ``include/circuit.h``.

The declarations themselves (constants, structs, callback types, prototypes)
are generated from the header into ``_cdefs`` by ``ci/gen_bindings.py`` and
re-exported here; this module adds how each function is called (GIL held or
released, required or a compatible addition). Nothing else in the package
calls ``ctypes`` on a symbol that is not declared here.
``tests/test_abi.py`` parses the header independently and checks this table
and the struct layouts against it.

CDLL or PyDLL
-------------
Every function is called through a ``PyDLL`` handle: the GIL stays held during
the call. Measured by ``bench.py`` (one run, 2-core machine, CPython 3.11, ns
per call, 1 thread / per call per thread with 2 threads):
``circuit_abi_version()`` 65 / 160 through PyDLL against 88 / 209 through
CDLL; ``circuit_breaker_record_parts`` 196 / 428 against 223 / 484 (earlier
single measurements on a busier machine: 64-78 against 160-172). Releasing
and re-taking the GIL costs more than the call itself (the calls are
lock-free and finish in nanoseconds), and under threads it adds a GIL
hand-off per call. Nothing in the library blocks, so holding the GIL
cannot stall other threads for long. A function that could run long (for
example rendering a large registry) is marked ``RELEASE`` in the table and is
called through a ``CDLL`` handle instead, so other threads run meanwhile.
Callbacks from C into Python are safe either way: ctypes trampolines take the
GIL with ``PyGILState_Ensure``, which is re-entrant.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import c_size_t, c_uint32, c_void_p
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _cdefs
from ._cdefs import *  # noqa: F401,F403 - the header's declarations, re-exported
from ._errors import (
    CircuitError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    LibraryError,
    LimitExceededError,
    NotFoundError,
    SnapshotConfigMismatchError,
    SnapshotCorruptError,
    SnapshotForeignError,
    SnapshotTruncatedError,
    SnapshotVersionError,
)

#: The ``CIRCUIT_ABI_VERSION`` this binding was written for (the header's).
ABI_VERSION = _cdefs.ABI_VERSION

#: Environment variable naming the library file to load.
LIBRARY_ENV = "CIRCUIT_LIBRARY"

# The constants, structs, callback types and function prototypes of
# include/circuit.h are generated into `_cdefs` (ci/gen_bindings.py) and
# re-exported here: `_ffi.RESULT_OK`, `_ffi.circuit_permit`, ...

# The `with` form keeps one integer per admitted call: the state word on the
# fast path, `generation << WORD_GENERATION_SHIFT | flags` on the slow path.
# Reading it back as `(p >> WORD_GENERATION_SHIFT, p & U32_MAX)` is right
# for both only because a fast-path word has every WORD_FAST_MASK bit clear,
# the probe bit included (its other low bits are flags the library ignores
# in a non-probe permit), and its generation where a permit int has it.
U32_MAX = 0xFFFF_FFFF
U64_MAX = (1 << 64) - 1

assert PERMIT_PROBE & WORD_FAST_MASK == PERMIT_PROBE
assert 1 << WORD_GENERATION_SHIFT == U32_MAX + 1


# ---- the function table ------------------------------------------------------
HOLD = "hold"  # PyDLL: the GIL stays held (short, lock-free calls)
RELEASE = "release"  # CDLL: the GIL is released (calls that may run long)

#: Functions called with the GIL released: freeing a breaker or registry may
#: run finalizers; adding and removing listeners, and releasing what holds
#: them, may wait on the library's listener bookkeeping (a callback arriving
#: on another thread must be able to take the GIL meanwhile); sweeping,
#: iterating and rendering a registry may be long; fleet sync's start spawns
#: threads, stop and free join them (the worker may be delivering events to
#: Python listeners meanwhile); a prober's poll waits for a due probe, and
#: close and free stop and join its thread.
_RELEASE = frozenset(
    {
        "circuit_breaker_free",
        "circuit_breaker_add_listener",
        "circuit_breaker_remove_listener",
        "circuit_registry_add_listener",
        "circuit_registry_remove_listener",
        "circuit_registry_free",
        "circuit_registry_sweep_idle",
        "circuit_registry_iter_new",
        "circuit_registry_iter_free",
        "circuit_registry_render_prometheus",
        "circuit_sync_start",
        "circuit_sync_stop",
        "circuit_sync_free",
        "circuit_prober_next",
        "circuit_prober_close",
        "circuit_prober_free",
    }
)

#: Functions every library of this ABI version exports; the others are
#: compatible additions a library of the same ABI version may lack (using
#: one that is missing raises LibraryError).
_REQUIRED = frozenset(
    {
        "circuit_abi_version",
        "circuit_version",
        "circuit_result_str",
        "circuit_last_error",
        "circuit_breaker_new",
        "circuit_breaker_retain",
        "circuit_breaker_free",
        "circuit_breaker_acquire",
        "circuit_breaker_record",
        "circuit_breaker_record_retry_after",
        "circuit_breaker_state",
        "circuit_breaker_generation",
        "circuit_breaker_metrics",
        "circuit_breaker_force",
        "circuit_breaker_clear_override",
        "circuit_breaker_reset",
        "circuit_breaker_state_word",
        "circuit_breaker_record_parts",
        "circuit_state_str",
        "circuit_state_parse",
        "circuit_clock_manual_new",
        "circuit_clock_monotonic_new",
        "circuit_clock_free",
        "circuit_clock_now",
        "circuit_clock_advance",
        "circuit_clock_set",
        "circuit_config_builder_new",
        "circuit_config_builder_free",
        "circuit_config_builder_build",
        "circuit_config_free",
        "circuit_config_builder_set_consecutive_failures",
        "circuit_config_builder_set_failure_rate",
        "circuit_config_builder_set_slow_call",
        "circuit_config_builder_set_ewma",
        "circuit_config_builder_set_minimum_calls",
        "circuit_config_builder_set_count_window",
        "circuit_config_builder_set_time_window",
        "circuit_config_builder_set_open_duration",
        "circuit_config_builder_set_max_open_duration",
        "circuit_config_builder_set_backoff_multiplier",
        "circuit_config_builder_set_jitter",
        "circuit_config_builder_set_half_open_probes",
        "circuit_config_builder_set_half_open_successes",
        "circuit_config_builder_set_probe_lease",
        "circuit_config_builder_set_metrics",
        "circuit_config_builder_set_seed",
    }
)

# circuit-abi-table: every function of include/circuit.h, once (generated
# prototypes), with how this binding calls it.
# (name, restype, argtypes, gil, required)
FUNCTIONS: Tuple[Tuple[str, Any, Sequence[Any], str, bool], ...] = tuple(
    (name, restype, argtypes, RELEASE if name in _RELEASE else HOLD, name in _REQUIRED)
    for name, restype, argtypes in _cdefs.PROTOTYPES
)
assert _RELEASE | _REQUIRED <= {row[0] for row in FUNCTIONS}


class _LoadFailed(LibraryError):
    """The file could not be opened at all (as opposed to a wrong library)."""


class _Missing:
    """Stands in for a function the loaded library does not export."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        raise LibraryError(
            f"{self.name} is not exported by the loaded libcircuit "
            f"(version {version()}); a newer library is needed for this feature"
        )


class Lib:
    """The loaded library: one attribute per function of the table (the name
    without its ``circuit_`` prefix), plus ``path`` and ``raw``."""

    path: str

    def __init__(self, path: str) -> None:
        self.path = path
        mode = getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2)
        try:
            py = ctypes.PyDLL(path, mode=mode)
            c = ctypes.CDLL(path, mode=mode)
        except OSError as e:
            raise _LoadFailed(f"cannot load libcircuit from {path!r}: {e}") from None
        self._py = py
        try:
            abi = py.circuit_abi_version
        except AttributeError:
            raise LibraryError(
                f"{path!r} is not libcircuit: it does not export circuit_abi_version"
            ) from None
        abi.restype = c_uint32
        abi.argtypes = ()
        found = abi()
        if found != ABI_VERSION:
            raise LibraryError(
                f"{path!r} implements circuit ABI version {found}, but this Python "
                f"binding (circuit {_package_version()}) was written for ABI version "
                f"{ABI_VERSION}; install a matching libcircuit or point "
                f"{LIBRARY_ENV} at one"
            )
        self.missing: List[str] = []
        for name, restype, argtypes, gil, required in FUNCTIONS:
            handle = py if gil == HOLD else c
            try:
                fn = handle[name]
            except AttributeError:
                if required:
                    raise LibraryError(
                        f"{path!r} reports ABI version {found} but does not export "
                        f"{name}; the library is incomplete or mismatched"
                    ) from None
                self.missing.append(name)
                setattr(self, name[len("circuit_") :], _Missing(name))
                continue
            fn.restype = restype
            fn.argtypes = tuple(argtypes)
            setattr(self, name[len("circuit_") :], fn)
        # The hot path's record call, declared again without argtypes (the
        # table's declaration above is the reference; this is the same
        # symbol). With argtypes, ctypes calls one `from_param` converter per
        # argument (about 40 ns each); without, a Python int is passed as a
        # C int (32 bits) and a prebuilt `byref` argument as a pointer with no
        # conversion at all. The x86-64 and AArch64 calling conventions as
        # implemented by libffi widen an int argument to the full register
        # (sign-extending), so `generation` and `flags` (uint32_t) arrive
        # intact and `duration_ns` (uint64_t) is exact for 0 <= d < 2**31;
        # callers pass longer durations through the declared function.
        # tests/test_breaker.py checks both sides of that boundary.
        raw = py["circuit_breaker_record_parts"]
        raw.restype = c_uint32
        self.raw_record_parts: Optional[Any] = raw
        # Acquire (the slow path: OPEN, HALF_OPEN, overrides), likewise
        # undeclared: its three arguments are prebuilt `byref` objects,
        # which ctypes passes as pointers without any conversion.
        raw = py["circuit_breaker_acquire"]
        raw.restype = c_uint32
        self.raw_acquire: Optional[Any] = raw
        # The untimed success of a permit with flags 0 in two arguments (each
        # argument of a ctypes call costs about 25 ns): the hot path of
        # `with` and of the untimed decorator and call(). A library of this
        # ABI version may lack it (then `None`: callers use record_parts).
        self.raw_record_success: Optional[Any] = None
        if "circuit_breaker_record_success" not in self.missing:
            raw = py["circuit_breaker_record_success"]
            raw.restype = c_uint32
            self.raw_record_success = raw
        if not _raw_passing_supported():
            self.raw_record_parts = None
            self.raw_acquire = None
            self.raw_record_success = None

    def __repr__(self) -> str:
        return f"<libcircuit {self.path!r}>"

    if TYPE_CHECKING:  # the functions are set from the table at run time

        def __getattr__(self, name: str) -> Any: ...


def _raw_passing_supported() -> bool:
    import platform

    return sys.maxsize > U32_MAX and platform.machine().lower() in (
        "x86_64",
        "amd64",
        "aarch64",
        "arm64",
    )


def _package_version() -> str:
    try:
        from importlib.metadata import version as v

        return v("libcircuit")
    except Exception:
        return "unknown"


def candidates(
    env: Optional[Dict[str, str]] = None, package_dir: Optional[str] = None
) -> List[Tuple[str, str]]:
    """Where the library is looked for, in order, as ``(how, path)`` pairs:
    ``$CIRCUIT_LIBRARY`` (alone when set: an explicit choice never falls back),
    else a copy bundled beside this module, ``ctypes.util.find_library``, and
    the SONAME through the system loader."""
    where: Mapping[str, str] = os.environ if env is None else env
    explicit = where.get(LIBRARY_ENV)
    if explicit:
        return [(f"${LIBRARY_ENV}", explicit)]
    here = package_dir if package_dir is not None else os.path.dirname(os.path.abspath(__file__))
    out: List[Tuple[str, str]] = []
    # A copy placed by hand (libcircuit.so), then the one a wheel carries
    # (libcircuit.abi3.so: the build gives it the extension suffix).
    bundled = [os.path.join(here, "libcircuit.so")]
    bundled += sorted(
        os.path.join(here, f)
        for f in os.listdir(here)
        if f.startswith("libcircuit.") and f.endswith(".so") and f != "libcircuit.so"
    )
    out.extend(("bundled", path) for path in bundled if os.path.isfile(path))
    found = ctypes.util.find_library("circuit")
    if found:
        out.append(("find_library", found))
    out.append(("system loader", "libcircuit.so.0"))
    return out


def load(env: Optional[Dict[str, str]] = None, package_dir: Optional[str] = None) -> Lib:
    """Finds and loads the library (see ``candidates``)."""
    tried = []
    for how, path in candidates(env, package_dir):
        try:
            return Lib(path)
        except _LoadFailed as e:
            # Only a file that cannot be opened moves on to the next place; a
            # library that loads but is wrong (ABI version, missing symbols)
            # is reported as is: loading another one would hide the mismatch.
            tried.append(f"  {how}: {e}")
    raise LibraryError(
        "libcircuit.so not found. Install the package as a wheel, which carries it "
        "(`pip install ./bindings/python` builds one), or build it with "
        "`cargo build --release -p circuit-ffi` "
        f"and set {LIBRARY_ENV}=/path/to/libcircuit.so, copy it into the installed "
        "package folder, or install it on the loader path (`make install`). Tried:\n"
        + "\n".join(tried)
    )


lib = load()


# ---- results to exceptions ---------------------------------------------------
def last_error() -> str:
    """The calling thread's last error message from the library."""
    n = c_size_t(0)
    buf = ctypes.create_string_buffer(512)
    rc = lib.last_error(buf, len(buf), ctypes.byref(n))
    if rc == RESULT_BUFFER_TOO_SMALL:
        buf = ctypes.create_string_buffer(n.value + 1)
        rc = lib.last_error(buf, len(buf), ctypes.byref(n))
    if rc != RESULT_OK:
        return ""
    return buf.raw[: n.value].decode("utf-8", "replace")


def result_name(code: int) -> str:
    name: bytes = lib.result_str(code)
    return name.decode()


_EXCEPTIONS = {
    RESULT_NULL_ARGUMENT: InternalError,  # the binding never passes NULL by mistake
    RESULT_INVALID_ARGUMENT: InvalidArgumentError,
    RESULT_INVALID_CONFIG: ConfigError,
    RESULT_INVALID_UTF8: InvalidArgumentError,
    RESULT_NOT_FOUND: NotFoundError,
    RESULT_LIMIT_EXCEEDED: LimitExceededError,
    RESULT_PANIC: InternalError,
    RESULT_SNAPSHOT_TRUNCATED: SnapshotTruncatedError,
    RESULT_SNAPSHOT_FOREIGN: SnapshotForeignError,
    RESULT_SNAPSHOT_VERSION: SnapshotVersionError,
    RESULT_SNAPSHOT_CORRUPT: SnapshotCorruptError,
    RESULT_SNAPSHOT_CONFIG_MISMATCH: SnapshotConfigMismatchError,
}


def error(code: int, context: str = "") -> CircuitError:
    """The exception for error code ``code``, with the library's message."""
    msg = last_error() or result_name(code)
    if context:
        msg = f"{context}: {msg}"
    return _EXCEPTIONS.get(code, CircuitError)(msg, code)


def check(code: int, context: str = "") -> None:
    """Raises the matching exception unless ``code`` is OK."""
    if code != RESULT_OK:
        raise error(code, context)


def pointer(out: c_void_p) -> int:
    """The handle an OK call wrote to an output pointer (never NULL then)."""
    v = out.value
    if not v:
        raise InternalError("the library returned OK with a NULL handle")
    return v


def breaker_needs_durations(ptr: int) -> bool:
    """Whether breaker ``ptr`` reads call durations (slow-call policy or
    latency histogram): the library decides, not the options given. A
    library older than the query is answered conservatively: yes."""
    if "circuit_breaker_needs_durations" in lib.missing:
        return True
    needs = c_uint32(0)
    check(lib.breaker_needs_durations(ptr, ctypes.byref(needs)), "circuit_breaker_needs_durations")
    return needs.value != 0


def version() -> str:
    """The loaded library's version string."""
    v: bytes = lib.version()
    return v.decode()


def features() -> int:
    """The loaded library's ``CIRCUIT_FEATURE_*`` bits (0 for a library
    older than ``circuit_features``)."""
    if "circuit_features" in lib.missing:
        return 0
    return int(lib.features())
