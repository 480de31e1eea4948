"""The C ABI of ``libcircuit``: loading, the ABI version check, and one table
declaring ``argtypes``/``restype`` for every function of ``include/circuit.h``.

Nothing else in the package calls ``ctypes`` on a symbol that is not declared
here. ``tests/test_abi.py`` parses the header and checks that this table
covers every function with matching types, and that the constants and struct
layouts below match the header.

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
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._errors import (
    CircuitError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    LibraryError,
    LimitExceededError,
    NotFoundError,
)

#: The ``CIRCUIT_ABI_VERSION`` this binding was written for.
ABI_VERSION = 1

#: Environment variable naming the library file to load.
LIBRARY_ENV = "CIRCUIT_LIBRARY"

# ---- constants of include/circuit.h (checked by tests/test_abi.py) ----------
STATE_COUNT = 7
PERMIT_PROBE = 1
RETRY_AFTER_UNKNOWN = 0xFFFF_FFFF_FFFF_FFFF
STRUCT_MIN_SIZE = 8
NAME_MAX_LEN = 1024
WORD_FAST_MASK = 0x1F
WORD_GENERATION_SHIFT = 32

OUTCOME_SUCCESS = 0
OUTCOME_FAILURE = 1
OUTCOME_TIMEOUT = 2
OUTCOME_IGNORED = 3

OVERRIDE_FORCED_OPEN = 1
OVERRIDE_FORCED_CLOSED = 2
OVERRIDE_DISABLED = 3
OVERRIDE_METRICS_ONLY = 4

RESULT_OK = 0
RESULT_NULL_ARGUMENT = 1
RESULT_INVALID_ARGUMENT = 2
RESULT_INVALID_CONFIG = 3
RESULT_INVALID_UTF8 = 4
RESULT_REJECTED_OPEN = 5
RESULT_REJECTED_FORCED_OPEN = 6
RESULT_REJECTED_HALF_OPEN_FULL = 7
RESULT_STALE = 8
RESULT_BUFFER_TOO_SMALL = 9
RESULT_NOT_FOUND = 10
RESULT_LIMIT_EXCEEDED = 11
RESULT_PANIC = 12
RESULT_RETRY_EXHAUSTED = 13
RESULT_BUDGET_EXHAUSTED = 14
RESULT_EMPTY = 15
RESULT_NOT_BUILT = 16

#: ``circuit_features()`` bit: fleet sync is built in (not in the slim library).
FEATURE_SYNC = 1

REASON_CONSECUTIVE_FAILURES = 0
REASON_FAILURE_RATE = 1
REASON_SLOW_CALL_RATE = 2
REASON_EWMA_FAILURE_RATE = 3
REASON_PROBE_FAILED = 4
REASON_PROBES_SUCCEEDED = 5
REASON_OPEN_DEADLINE_PASSED = 6
REASON_PROBE_LEASE_EXPIRED = 7
REASON_OVERRIDE_SET = 8
REASON_OVERRIDE_CLEARED = 9
REASON_OVERRIDE_EXPIRED = 10
REASON_RESET = 11
REASON_SHADOW_TRIP = 12
REASON_REMOTE = 13

BACKOFF_NONE = 0
BACKOFF_CONSTANT = 1
BACKOFF_EXPONENTIAL = 2

JITTER_NONE = 0
JITTER_FULL = 1
JITTER_EQUAL = 2
JITTER_DECORRELATED = 3
JITTER_PLUS_MINUS = 4

RETRY_OUTCOME_SUCCESS = 0
RETRY_OUTCOME_RETRYABLE = 1
RETRY_OUTCOME_NOT_RETRYABLE = 2
RETRY_OUTCOME_REJECTED = 3

RETRY_STOP_RETRY = 0
RETRY_STOP_SUCCESS = 1
RETRY_STOP_REJECTED = 2
RETRY_STOP_NOT_RETRYABLE = 3
RETRY_STOP_ATTEMPTS_EXHAUSTED = 4
RETRY_STOP_BUDGET_EXHAUSTED = 5

SYNC_CONNECTED = 0
SYNC_DEGRADED = 1
SYNC_STOPPED = 2

# The `with` form keeps one integer per admitted call: the state word on the
# fast path, `generation << 32 | flags` on the slow path. Reading it back as
# `(p >> 32, p & 0xFFFFFFFF)` is right for both only because a fast-path
# word has every CIRCUIT_WORD_FAST_MASK bit clear, the probe bit included
# (its other low bits are flags the library ignores in a non-probe permit).
assert PERMIT_PROBE & WORD_FAST_MASK == PERMIT_PROBE

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class circuit_permit(Structure):
    _fields_ = [("generation", c_uint32), ("flags", c_uint32)]


class circuit_metrics(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_uint32),
        ("generation", c_uint32),
        ("reserved", c_uint32),
        ("successes", c_uint64),
        ("failures", c_uint64),
        ("timeouts", c_uint64),
        ("ignored", c_uint64),
        ("slow", c_uint64),
        ("stale", c_uint64),
        ("rejected_open", c_uint64),
        ("rejected_forced_open", c_uint64),
        ("rejected_half_open_full", c_uint64),
        ("transitions_to", c_uint64 * STATE_COUNT),
        ("nanos_in_state", c_uint64 * STATE_COUNT),
        ("failure_rate", c_double),
        ("slow_call_rate", c_double),
        ("window_calls", c_uint64),
    ]


class circuit_event(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("from", c_uint32),
        ("to", c_uint32),
        ("reason", c_uint32),
        ("generation", c_uint32),
        ("reserved", c_uint32),
        ("at_ns", c_uint64),
        ("open_for_ns", c_uint64),
        ("name", c_void_p),  # const char *, NUL-terminated, name_len bytes
        ("name_len", c_size_t),
    ]


class circuit_latency(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("count", c_uint64),
        ("sum_ns", c_uint64),
        ("min_ns", c_uint64),
        ("max_ns", c_uint64),
        ("p50_ns", c_uint64),
        ("p90_ns", c_uint64),
        ("p95_ns", c_uint64),
        ("p99_ns", c_uint64),
        ("p999_ns", c_uint64),
    ]


class circuit_sync_stats(Structure):
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


#: `circuit_event_callback`: (userdata, const circuit_event *) -> void
circuit_event_callback = ctypes.CFUNCTYPE(None, c_void_p, POINTER(circuit_event))
#: `circuit_userdata_free`: (userdata) -> void
circuit_userdata_free = ctypes.CFUNCTYPE(None, c_void_p)


# ---- the function table ------------------------------------------------------
HOLD = "hold"  # PyDLL: the GIL stays held (short, lock-free calls)
RELEASE = "release"  # CDLL: the GIL is released (calls that may run long)

_u32p = POINTER(c_uint32)
_u64p = POINTER(c_uint64)
_voidpp = POINTER(c_void_p)
_sizep = POINTER(c_size_t)

# circuit-abi-table: every function of include/circuit.h, once.
# (name, restype, argtypes, gil, required)
# `required=False` marks functions a library of the same ABI version may lack
# (compatible additions); using one that is missing raises LibraryError.
FUNCTIONS: Tuple[Tuple[str, Any, Sequence[Any], str, bool], ...] = (
    ("circuit_abi_version", c_uint32, (), HOLD, True),
    ("circuit_version", c_char_p, (), HOLD, True),
    ("circuit_features", c_uint32, (), HOLD, False),
    ("circuit_result_str", c_char_p, (c_uint32,), HOLD, True),
    ("circuit_last_error", c_uint32, (c_void_p, c_size_t, POINTER(c_size_t)), HOLD, True),
    # breakers
    ("circuit_breaker_new", c_uint32, (c_void_p, c_void_p, _voidpp), HOLD, True),
    ("circuit_breaker_retain", c_void_p, (c_void_p,), HOLD, True),
    ("circuit_breaker_free", None, (c_void_p,), RELEASE, True),  # may run finalizers
    ("circuit_breaker_acquire", c_uint32, (c_void_p, POINTER(circuit_permit), _u64p), HOLD, True),
    ("circuit_breaker_record", c_uint32, (c_void_p, circuit_permit, c_uint32, c_uint64), HOLD, True),
    (
        "circuit_breaker_record_retry_after",
        c_uint32,
        (c_void_p, circuit_permit, c_uint32, c_uint64, c_uint64),
        HOLD,
        True,
    ),
    ("circuit_breaker_state", c_uint32, (c_void_p, _u32p), HOLD, True),
    ("circuit_breaker_generation", c_uint32, (c_void_p, _u32p), HOLD, True),
    ("circuit_breaker_metrics", c_uint32, (c_void_p, POINTER(circuit_metrics)), HOLD, True),
    ("circuit_breaker_force", c_uint32, (c_void_p, c_uint32, c_uint64), HOLD, True),
    ("circuit_breaker_clear_override", c_uint32, (c_void_p,), HOLD, True),
    ("circuit_breaker_reset", c_uint32, (c_void_p,), HOLD, True),
    ("circuit_breaker_state_word", c_uint32, (c_void_p, _voidpp), HOLD, True),
    (
        "circuit_breaker_record_parts",
        c_uint32,
        (c_void_p, c_uint32, c_uint32, c_uint32, c_uint64),
        HOLD,
        True,
    ),
    ("circuit_state_str", c_char_p, (c_uint32,), HOLD, True),
    ("circuit_state_parse", c_uint32, (c_char_p, c_size_t, _u32p), HOLD, True),
    # clocks
    ("circuit_clock_manual_new", c_void_p, (c_uint64,), HOLD, True),
    ("circuit_clock_monotonic_new", c_void_p, (), HOLD, True),
    ("circuit_clock_free", None, (c_void_p,), HOLD, True),
    ("circuit_clock_now", c_uint32, (c_void_p, _u64p), HOLD, True),
    ("circuit_clock_advance", c_uint32, (c_void_p, c_uint64), HOLD, True),
    ("circuit_clock_set", c_uint32, (c_void_p, c_uint64), HOLD, True),
    # configuration
    ("circuit_config_builder_new", c_void_p, (), HOLD, True),
    ("circuit_config_builder_free", None, (c_void_p,), HOLD, True),
    ("circuit_config_builder_build", c_uint32, (c_void_p, _voidpp), HOLD, True),
    ("circuit_config_free", None, (c_void_p,), HOLD, True),
    ("circuit_config_builder_set_consecutive_failures", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_failure_rate", c_uint32, (c_void_p, c_double), HOLD, True),
    ("circuit_config_builder_set_slow_call", c_uint32, (c_void_p, c_double, c_uint64), HOLD, True),
    ("circuit_config_builder_set_ewma", c_uint32, (c_void_p, c_double, c_double), HOLD, True),
    ("circuit_config_builder_set_minimum_calls", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_count_window", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_time_window", c_uint32, (c_void_p, c_uint64, c_uint32), HOLD, True),
    ("circuit_config_builder_set_open_duration", c_uint32, (c_void_p, c_uint64), HOLD, True),
    ("circuit_config_builder_set_max_open_duration", c_uint32, (c_void_p, c_uint64), HOLD, True),
    ("circuit_config_builder_set_backoff_multiplier", c_uint32, (c_void_p, c_double), HOLD, True),
    ("circuit_config_builder_set_jitter", c_uint32, (c_void_p, c_double), HOLD, True),
    ("circuit_config_builder_set_half_open_probes", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_half_open_successes", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_probe_lease", c_uint32, (c_void_p, c_uint64), HOLD, True),
    ("circuit_config_builder_set_metrics", c_uint32, (c_void_p, c_uint32), HOLD, True),
    ("circuit_config_builder_set_seed", c_uint32, (c_void_p, c_uint64), HOLD, True),
    (
        "circuit_config_builder_set_latency_histogram",
        c_uint32,
        (c_void_p, c_uint64),
        HOLD,
        False,
    ),
    # named breakers
    (
        "circuit_breaker_new_named",
        c_uint32,
        (c_void_p, c_void_p, c_char_p, c_size_t, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_breaker_name", c_uint32, (c_void_p, c_void_p, c_size_t, _sizep), HOLD, False),
    # events. Adding and removing listeners, and releasing what holds them,
    # may run finalizers and wait on the library's listener bookkeeping:
    # the GIL is released so that a callback arriving on another thread can
    # take it meanwhile.
    (
        "circuit_breaker_add_listener",
        c_uint32,
        (c_void_p, circuit_event_callback, c_void_p, circuit_userdata_free, _u64p),
        RELEASE,
        False,
    ),
    ("circuit_breaker_remove_listener", c_uint32, (c_void_p, c_uint64), RELEASE, False),
    (
        "circuit_registry_add_listener",
        c_uint32,
        (c_void_p, circuit_event_callback, c_void_p, circuit_userdata_free, _u64p),
        RELEASE,
        False,
    ),
    ("circuit_registry_remove_listener", c_uint32, (c_void_p, c_uint64), RELEASE, False),
    ("circuit_breaker_event_queue_new", c_uint32, (c_void_p, c_size_t, _voidpp), HOLD, False),
    ("circuit_registry_event_queue_new", c_uint32, (c_void_p, c_size_t, _voidpp), HOLD, False),
    ("circuit_event_queue_free", None, (c_void_p,), HOLD, False),
    (
        "circuit_event_queue_poll",
        c_uint32,
        (c_void_p, POINTER(circuit_event), c_void_p, c_size_t, _sizep),
        HOLD,
        False,
    ),
    ("circuit_event_queue_len", c_uint32, (c_void_p, _sizep), HOLD, False),
    ("circuit_event_queue_dropped", c_uint32, (c_void_p, _u64p), HOLD, False),
    ("circuit_reason_str", c_char_p, (c_uint32,), HOLD, False),
    # registries
    (
        "circuit_registry_new",
        c_uint32,
        (c_void_p, c_uint64, c_uint32, c_void_p, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_registry_free", None, (c_void_p,), RELEASE, False),
    (
        "circuit_registry_set_config",
        c_uint32,
        (c_void_p, c_char_p, c_size_t, c_void_p),
        HOLD,
        False,
    ),
    (
        "circuit_registry_get_or_create",
        c_uint32,
        (c_void_p, c_char_p, c_size_t, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_registry_get", c_uint32, (c_void_p, c_char_p, c_size_t, _voidpp), HOLD, False),
    ("circuit_registry_remove", c_uint32, (c_void_p, c_char_p, c_size_t), HOLD, False),
    ("circuit_registry_len", c_uint32, (c_void_p, _sizep), HOLD, False),
    ("circuit_registry_sweep_idle", c_uint32, (c_void_p, _sizep), RELEASE, False),
    ("circuit_registry_iter_new", c_uint32, (c_void_p, _voidpp), RELEASE, False),
    (
        "circuit_registry_iter_next",
        c_uint32,
        (c_void_p, POINTER(c_void_p), _sizep, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_registry_iter_free", None, (c_void_p,), RELEASE, False),
    (
        "circuit_registry_render_prometheus",
        c_uint32,
        (c_void_p, c_void_p, c_size_t, _sizep),
        RELEASE,
        False,
    ),
    # retries
    (
        "circuit_retry_policy_new",
        c_uint32,
        (c_uint32, c_uint64, c_double, c_uint32, c_double, c_uint64, c_uint32, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_retry_policy_free", None, (c_void_p,), HOLD, False),
    (
        "circuit_retry_policy_delay",
        c_uint32,
        (c_void_p, c_uint32, c_uint64, c_uint64, _u64p),
        HOLD,
        False,
    ),
    ("circuit_random_seed", c_uint64, (), HOLD, False),
    (
        "circuit_retry_budget_new",
        c_uint32,
        (c_double, c_double, c_uint64, c_uint32, c_void_p, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_retry_budget_free", None, (c_void_p,), HOLD, False),
    ("circuit_retry_budget_record_call", c_uint32, (c_void_p,), HOLD, False),
    ("circuit_retry_budget_try_retry", c_uint32, (c_void_p,), HOLD, False),
    ("circuit_retry_budget_balance", c_uint32, (c_void_p, _u64p, _u64p, _u64p), HOLD, False),
    (
        "circuit_retry_next",
        c_uint32,
        (c_void_p, c_void_p, c_uint32, c_uint64, c_uint64, _u64p),
        HOLD,
        False,
    ),
    (
        "circuit_retry_decide",
        c_uint32,
        (c_void_p, c_void_p, c_uint32, c_uint32, c_uint64, c_uint64, _u64p, _u32p),
        HOLD,
        False,
    ),
    # latency and adaptive timeouts
    ("circuit_breaker_latency", c_uint32, (c_void_p, POINTER(circuit_latency)), HOLD, False),
    ("circuit_breaker_latency_percentile", c_uint32, (c_void_p, c_double, _u64p), HOLD, False),
    (
        "circuit_adaptive_timeout_new",
        c_uint32,
        (c_double, c_double, c_uint64, c_uint64, c_uint64, c_uint64, _voidpp),
        HOLD,
        False,
    ),
    ("circuit_adaptive_timeout_free", None, (c_void_p,), HOLD, False),
    (
        "circuit_breaker_recommended_timeout",
        c_uint32,
        (c_void_p, c_void_p, _u64p),
        HOLD,
        False,
    ),
    # fleet sync: start spawns threads, stop and free join them (and the
    # worker may be delivering events to Python listeners meanwhile), so
    # the GIL is released.
    (
        "circuit_sync_start",
        c_uint32,
        (c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, _voidpp),
        RELEASE,
        False,
    ),
    ("circuit_sync_stop", c_uint32, (c_void_p,), RELEASE, False),
    ("circuit_sync_free", None, (c_void_p,), RELEASE, False),
    ("circuit_sync_status", c_uint32, (c_void_p, POINTER(circuit_sync_stats)), HOLD, False),
    ("circuit_sync_last_error", c_uint32, (c_void_p, c_void_p, c_size_t, _sizep), HOLD, False),
)


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
        if not _raw_passing_supported():
            self.raw_record_parts = None
            self.raw_acquire = None

    def __repr__(self) -> str:
        return f"<libcircuit {self.path!r}>"

    if TYPE_CHECKING:  # the functions are set from the table at run time

        def __getattr__(self, name: str) -> Any: ...


def _raw_passing_supported() -> bool:
    import platform

    return sys.maxsize > 2**32 and platform.machine().lower() in (
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
