"""Fleet sync of registries on a host-shared segment, through the C ABI,
with a real redis-server on a free loopback port: two processes of "host
A" (this one and a spawned one) each run a registry on one segment with
its own ``FleetSync``; a spawned third process is "host B" with an
ordinary registry and its ``FleetSync``."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

import circuit
from circuit import State, SyncState

from test_sync import redis_server, redis_url, wait_for  # noqa: F401  (redis_url is a fixture)

pytestmark = pytest.mark.skipif(redis_server is None, reason="redis-server not installed")

OPTIONS = dict(consecutive_failures=3, open_duration=60, jitter=0)
NAMES = ("payments", "search")


def _open(segment_path):
    if segment_path is None:
        return circuit.Registry(**OPTIONS)
    return circuit.Segment(segment_path, **OPTIONS).registry()


def _instance(url: str, ns: str, segment_path, conn) -> None:
    """A spawned instance: a registry (on the segment at ``segment_path``,
    or an ordinary one) with its ``FleetSync``, answering one command at a
    time on ``conn``."""
    r = _open(segment_path)
    for name in NAMES:  # sync applies fleet states to breakers that exist here
        r[name]
    s = r.sync(url, ns)
    try:
        while True:
            cmd, name = conn.recv()
            if cmd == "exit":
                break
            if cmd == "trip":
                for _ in range(OPTIONS["consecutive_failures"]):
                    try:
                        with r[name]:
                            raise ConnectionError("partner failed")
                    except (ConnectionError, circuit.CircuitOpenError):
                        pass
                conn.send(r[name].state.name)
            elif cmd == "state":
                conn.send(r[name].state.name)
            elif cmd == "status":
                st = s.status()
                conn.send((st.state.name, st.published, st.applied))
    finally:
        s.close()
        r.close()


class Instance:
    def __init__(self, url: str, ns: str, segment_path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_instance, args=(url, ns, segment_path, theirs))
        self.proc.start()

    def ask(self, cmd: str, name: str = ""):
        self.conn.send((cmd, name))
        assert self.conn.poll(30), f"no answer to {cmd} {name}"
        return self.conn.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(("exit", ""))
            except OSError:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)


def test_registries_on_a_segment_sync_with_another_host(redis_url, tmp_path):  # noqa: F811
    ns = f"py-shost-{os.getpid()}-{time.monotonic_ns()}"
    path = str(tmp_path / "seg")
    a1 = circuit.Segment(path, **OPTIONS).registry()
    mine = {name: a1[name] for name in NAMES}
    s1 = a1.sync(redis_url, ns)
    a2 = Instance(redis_url, ns, path)
    host_b = Instance(redis_url, ns, None)
    try:
        for who in (a2, host_b):
            assert wait_for(lambda: who.ask("status")[0] == "CONNECTED"), who.ask("status")
        assert wait_for(lambda: s1.state is SyncState.CONNECTED), s1.status()

        # A trip in host A's other process: OPEN here at once (one breaker),
        # on host B through Redis.
        assert a2.ask("trip", "payments") == "OPEN"
        assert mine["payments"].state is State.OPEN
        assert mine["payments"].generation == 1
        assert wait_for(lambda: host_b.ask("state", "payments") == "OPEN")
        assert wait_for(lambda: host_b.ask("status")[2] >= 1)
        # The trip was published by the process that won it (its count may
        # lag host B's receipt by a moment); this process, which sees the
        # same OPEN, has published nothing.
        assert wait_for(lambda: a2.ask("status")[1] >= 1)
        assert a2.ask("status")[1] == 1
        assert s1.status().published == 0

        # A trip on host B opens host A's shared breaker, seen by both of
        # host A's processes; the shared breaker moves once.
        assert host_b.ask("trip", "search") == "OPEN"
        assert wait_for(
            lambda: mine["search"].state is State.OPEN and a2.ask("state", "search") == "OPEN"
        ), (mine["search"].state, s1.status())
        assert mine["search"].generation == 1
        assert wait_for(lambda: s1.status().applied + a2.ask("status")[2] >= 1)
        with pytest.raises(circuit.CircuitOpenError):
            with mine["search"]:
                pass
    finally:
        a2.close()
        host_b.close()
        s1.close()
        a1.close()
    assert a2.proc.exitcode == 0 and host_b.proc.exitcode == 0
