"""Shared fixtures. The suite runs against the real libcircuit.so (found the
way the package finds it: `$CIRCUIT_LIBRARY` in ci/python.sh)."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
from typing import Any, Callable, Iterable, Iterator, List, Sequence, Tuple

import pytest

import circuit

HERE = pathlib.Path(__file__).resolve().parent


def repo_root() -> pathlib.Path:
    for p in [HERE, *HERE.parents]:
        if (p / "include" / "circuit.h").is_file():
            return p
    raise RuntimeError("include/circuit.h not found above " + str(HERE))


@pytest.fixture(scope="session")
def header_text() -> str:
    path = os.environ.get("CIRCUIT_HEADER") or str(repo_root() / "include" / "circuit.h")
    text = pathlib.Path(path).read_text()
    # The library's declarations end with the include guard; after it come
    # inline helpers for C callers (CIRCUIT_FAST_H), not library symbols.
    end = "#endif  /* CIRCUIT_H */"
    assert end in text, f"{path}: no {end!r} line"
    return text.split(end)[0]


@pytest.fixture
def clock() -> Iterator[circuit.ManualClock]:
    c = circuit.ManualClock(1000)
    yield c
    c.close()


@pytest.fixture
def make(clock: circuit.ManualClock):
    """Breakers on the manual clock, without jitter, closed after the test."""
    made = []

    def factory(**kw):
        kw.setdefault("jitter", 0)
        kw.setdefault("clock", clock)
        b = circuit.Breaker(**kw)
        made.append(b)
        return b

    yield factory
    for b in made:
        b.close()


class Boom(Exception):
    """A dependency failure."""


def fail(*_a, **_k):
    raise Boom("dependency failed")


def ok(*a, **_k):
    return a[0] if a else "ok"


def pytest_report_header(config):
    return [
        f"circuit package: {os.path.dirname(circuit.__file__)}",
        f"libcircuit: {circuit.library_path()} (version {circuit.library_version()}, ABI {circuit.ABI_VERSION})",
    ]


def fork_child(body: Callable[[], None]) -> int:
    """Runs ``body`` in a forked child, which exits with status 0 when it
    returns and 1 when it raises; returns the child's pid (``wait_ok``)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def wait_ok(pids: Iterable[int]) -> None:
    """Waits for each child; each must have exited with status 0."""
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def run_spawned(target: Callable[..., None], args: Sequence[Tuple[Any, ...]]) -> List[Any]:
    """Runs ``target(*a, q)`` in a process of the ``spawn`` start method for
    each ``a`` in ``args``; returns what each put on the queue ``q``, in the
    order it arrived. Each process must exit with status 0."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, q)) for a in args]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return results
