"""After os.fork() the child gets working breakers.

The core has no threads, sockets or locks held across calls, and the binding
keeps only per-thread permit stacks, so a forked child inherits breakers in
the state they had at the fork and uses them independently of the parent.
The child reports through its exit status (and a pipe), never by raising
into pytest.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest

import circuit
from circuit import State

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
            out = fn()
            os.write(w, json.dumps(out).encode())
            code = 0
        except BaseException as e:  # report, never unwind into pytest
            try:
                os.write(w, json.dumps({"error": repr(e)}).encode())
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    result = json.loads(data.decode() or "{}")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, result
    return result


def test_child_inherits_and_uses_breakers_independently():
    clock = circuit.ManualClock()
    b = circuit.Breaker(consecutive_failures=2, open_duration=5, jitter=0, clock=clock)
    with b:
        pass

    def child():
        before = b.metrics().successes
        for _ in range(2):
            try:
                with b:
                    raise OSError()
            except OSError:
                pass
        tripped = b.state.label
        clock.advance(5)
        with b:
            pass
        fresh = circuit.Breaker(consecutive_failures=1)

        @fresh
        def dep():
            raise ValueError()

        try:
            dep()
        except ValueError:
            pass
        return {
            "before": before,
            "tripped": tripped,
            "after": b.state.label,
            "fresh": fresh.state.label,
        }

    out = _in_child(child)
    assert out == {"before": 1, "tripped": "open", "after": "closed", "fresh": "open"}
    # The parent's breaker is untouched by the child.
    m = b.metrics()
    assert m.successes == 1 and m.failures == 0 and b.state is State.CLOSED
    b.close()


def test_fork_while_another_thread_is_inside_a_call():
    b = circuit.Breaker(consecutive_failures=1)
    inside = threading.Event()
    release = threading.Event()

    def holder():
        with b:
            inside.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    inside.wait()

    def child():
        # The thread that held a permit does not exist here; this thread's
        # own calls work.
        with b:
            pass
        try:
            with b:
                raise KeyError()
        except KeyError:
            pass
        return {"state": b.state.label, "failures": b.metrics().failures}

    out = _in_child(child)
    release.set()
    t.join()
    assert out == {"state": "open", "failures": 1}
    assert b.state is State.CLOSED
    b.close()


def _mp_worker(q):
    b = _SHARED
    with b:
        pass
    q.put((b.state.label, b.metrics().successes))


_SHARED = None


def test_multiprocessing_fork_context():
    global _SHARED
    _SHARED = circuit.Breaker()
    with _SHARED:
        pass
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_mp_worker, args=(q,))
    p.start()
    got = q.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert got == ("closed", 2)
    assert _SHARED.metrics().successes == 1
    _SHARED.close()


def test_fork_while_a_registry_lock_is_held():
    """Locks the binding keeps (a registry's wrapper cache, the listener
    token counter) are renewed in the child: a fork while another thread
    holds one does not deadlock the child."""
    import signal

    from circuit import _events

    r = circuit.Registry(consecutive_failures=1)
    r["before"]
    held = threading.Event()
    release = threading.Event()

    def holder():
        with r._lock, _events._lock:
            held.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    held.wait()

    def child():
        signal.alarm(20)  # a deadlock would end the child with SIGALRM
        b = r["after"]
        l = b.add_listener(lambda e: None)
        l.remove()
        return {"names": r.names()}

    try:
        out = _in_child(child)
    finally:
        release.set()
        t.join()
    assert out == {"names": ["after", "before"]}
    r.close()
