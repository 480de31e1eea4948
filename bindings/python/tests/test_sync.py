"""Fleet sync through a real redis-server on a free loopback port: two
registries in the same namespace (two "instances") share a transition."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

import circuit
from circuit import Reason, State, SyncState

from conftest import Boom, fail

redis_server = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(redis_server is None, reason="redis-server not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    p = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        def up():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    return c.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        assert wait_for(up), "redis-server did not start"
        yield f"redis://127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(10)


def test_a_transition_on_one_instance_reaches_the_other(redis_url):
    ns = f"py-{time.monotonic_ns()}"
    a = circuit.Registry(consecutive_failures=3, jitter=0)
    b = circuit.Registry(consecutive_failures=3, jitter=0)
    pa, pb = a["partner"], b["partner"]  # B must know the name: never created from a message
    seen = []
    b.add_listener(seen.append)
    sa, sb = a.sync(redis_url, ns), b.sync(redis_url, ns)
    try:
        assert wait_for(lambda: sa.state is SyncState.CONNECTED and sb.state is SyncState.CONNECTED)
        for _ in range(3):
            with pytest.raises(Boom):
                pa.call(fail)
        assert pa.state is State.OPEN
        assert wait_for(lambda: pb.state is State.OPEN), sb.status()
        with pytest.raises(circuit.CircuitOpenError):
            pb.call(lambda: None)
        assert wait_for(lambda: sa.status().published >= 1 and sb.status().applied >= 1)
        assert wait_for(
            lambda: any(e.reason is Reason.REMOTE and e.to_state is State.OPEN for e in seen)
        ), seen
        assert "FleetSync('redis://127.0.0.1:" in repr(sa)
    finally:
        sa.stop()
        assert sa.state is SyncState.STOPPED
        sa.close()
        sa.close()
        sb.close()
        a.close()
        b.close()
    with pytest.raises(circuit.ClosedError):
        sa.status()


def redis_command(url: str, *args: str, full: bool = False) -> bytes:
    """One command in the RESP protocol on a fresh connection; the reply's
    first line (or, with ``full``, the reply as read)."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    req = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection((host, int(port)), timeout=2) as c:
        c.sendall(req)
        reply = c.recv(4096)
        return reply if full else reply.split(b"\r\n", 1)[0]


def test_a_planted_malformed_record_is_repaired_and_counted(redis_url):
    ns = f"py-{time.monotonic_ns()}"
    r = circuit.Registry(consecutive_failures=1, jitter=0)
    b = r["partner"]
    s = r.sync(redis_url, ns)
    try:
        assert wait_for(lambda: s.state is SyncState.CONNECTED), s.status()
        assert s.status().repaired == 0
        # Anyone who can write the namespace can plant a record: this one's
        # time field is not a number.
        fields = {"epoch": "1700000000000123", "ver": "3", "state": "closed", "until": "0",
                  "force": "", "force_until": "0", "origin": "planted", "ts": "bogus",
                  "name": "partner"}
        planted = [x for kv in fields.items() for x in kv]
        assert redis_command(redis_url, "HSET", f"cb:{{{ns}}}:b:partner", *planted) == b":9"
        with pytest.raises(Boom):
            b.call(fail)
        assert b.state is State.OPEN
        assert wait_for(lambda: s.status().repaired == 1 and s.status().pending == 0), s.status()
        assert s.state is SyncState.CONNECTED, s.last_error
        # The record is this instance's now: a well-formed OPEN.
        state = redis_command(redis_url, "HGET", f"cb:{{{ns}}}:b:partner", "state")
        assert state == b"$4", state
    finally:
        s.close()
        r.close()


def test_unreachable_redis_is_degraded_and_hides_the_password():
    r = circuit.Registry()
    port = free_port()  # nothing listens there
    s = r.sync(f"redis://user:s3cr3t@127.0.0.1:{port}", "ns")
    try:
        assert wait_for(lambda: s.state is SyncState.DEGRADED and s.last_error != "")
        assert "s3cr3t" not in s.last_error and "s3cr3t" not in repr(s)
        b = r["x"]
        with b:  # the call path does not wait for Redis
            pass
    finally:
        s.close()
        r.close()


@pytest.mark.parametrize(
    "url, ns",
    [("http://127.0.0.1:1", "ns"), ("redis://127.0.0.1:1", "bad namespace!"), ("redis://x:pw@", "")],
)
def test_bad_url_or_namespace(url, ns):
    r = circuit.Registry()
    with pytest.raises(circuit.ConfigError) as e:
        r.sync(url, ns)
    assert "pw@" not in str(e.value)
    with pytest.raises(TypeError):
        r.sync(1, "ns")
    r.close()


def test_a_quorum_of_two_opens_the_fleet_only_after_the_second_trip(redis_url):
    ns = f"pyq-{time.monotonic_ns()}"
    regs = [circuit.Registry(consecutive_failures=3, jitter=0, open_duration=30) for _ in range(3)]
    breakers = [r["partner"] for r in regs]
    syncs = [r.sync(redis_url, ns) for r in regs]
    try:
        for s in syncs:
            s.set_fleet_policy("partner", quorum_instances=2, window=30)
        with pytest.raises(circuit.ConfigError):
            syncs[0].set_fleet_policy("partner", quorum_fraction=1.5, window=30)
        with pytest.raises(circuit.ConfigError):
            syncs[0].set_fleet_policy("partner", window=0)
        assert wait_for(lambda: all(s.state is SyncState.CONNECTED for s in syncs))
        assert wait_for(
            lambda: redis_command(redis_url, "ZCARD", f"cb:{{{ns}}}:live") == b":3"
        )

        def trip(b):
            for _ in range(3):
                with pytest.raises(Boom):
                    b.call(fail)
            assert b.state is State.OPEN

        trip(breakers[0])
        assert wait_for(lambda: syncs[0].status().votes == 1), syncs[0].status()
        time.sleep(0.5)  # one vote of two: nobody else opens
        assert breakers[1].state is State.CLOSED and breakers[2].state is State.CLOSED
        trip(breakers[1])
        assert wait_for(lambda: breakers[2].state is State.OPEN), syncs[2].status()
    finally:
        for s in syncs:
            s.close()
        for r in regs:
            r.close()


def circuit_cli() -> str:
    """The operator CLI: $CIRCUIT_CLI (ci/python.sh builds it and sets it),
    else the release build in the workspace's target directory."""
    given = os.environ.get("CIRCUIT_CLI")
    if given:
        assert os.access(given, os.X_OK), f"CIRCUIT_CLI={given} is not an executable"
        return given
    root = Path(__file__).resolve().parents[3]
    target = root / os.environ.get("CARGO_TARGET_DIR", "target")
    cli = target / "release" / "circuit"
    if not os.access(cli, os.X_OK):
        pytest.skip(f"{cli} not built (cargo build --release -p circuit-cli)")
    return str(cli)


def test_a_config_published_with_the_cli_applies_and_a_planted_one_is_refused(redis_url):
    cli = circuit_cli()
    ns = f"pyconf-{time.monotonic_ns()}"
    regs = [circuit.Registry(consecutive_failures=2, jitter=0, open_duration=60) for _ in range(2)]
    a, b = (r["partner"] for r in regs)
    syncs = [r.sync(redis_url, ns) for r in regs]
    key = f"cb:{{{ns}}}:c:partner"

    def notice(epoch: str, ver: int) -> str:
        return f'{{"v":1,"ns":"{ns}","c":"partner","e":"{epoch}","n":{ver}}}'

    try:
        assert wait_for(lambda: all(s.state is SyncState.CONNECTED for s in syncs))
        # A record planted by whoever can write the namespace, with an
        # option the parser does not know: refused whole, even its
        # consecutive_failures=1.
        planted = {"fv": "1", "ep": "1700000000000001", "ver": "1", "name": "partner",
                   "cfg": "consecutive_failures=1 colour=red", "origin": "planted", "ts": "1"}
        fields = [x for kv in planted.items() for x in kv]
        assert redis_command(redis_url, "HSET", key, *fields) == b":7"
        redis_command(redis_url, "PUBLISH", f"cb:{{{ns}}}:ev", notice("1700000000000001", 1))
        assert wait_for(lambda: all(s.status().configs_refused >= 1 for s in syncs)), [
            s.status() for s in syncs
        ]
        assert all(s.status().configs_applied == 0 for s in syncs)
        with pytest.raises(Boom):
            a.call(fail)
        assert a.state is State.CLOSED  # still 2 consecutive failures to trip

        # The operator publishes a config with the CLI: every instance applies it.
        out = subprocess.run(
            ["timeout", "20", cli, "--redis", redis_url, "--namespace", ns,
             "configure", "partner", "consecutive_failures=4"],
            capture_output=True, text=True, check=False,
        )
        assert out.returncode == 0, out
        # Version 2: the write script bumps the version of the planted record.
        assert "config version 2 published" in out.stdout, out.stdout
        assert wait_for(lambda: all(s.status().configs_applied == 1 for s in syncs)), [
            s.status() for s in syncs
        ]
        refused = [s.status().configs_refused for s in syncs]
        assert a.state is State.CLOSED and b.state is State.CLOSED

        # A bad text planted over the published record (a version the
        # instances have not seen: one HSET) changes nothing and is counted.
        reply = redis_command(redis_url, "HGET", key, "ep", full=True).split(b"\r\n")
        assert reply[0].startswith(b"$") and reply[1].isdigit(), reply
        epoch = reply[1].decode()
        bad = "consecutive_failures=1 jitter=2"  # jitter above 1: the builder refuses it
        assert redis_command(redis_url, "HSET", key, "ver", "3", "cfg", bad) == b":0"
        redis_command(redis_url, "PUBLISH", f"cb:{{{ns}}}:ev", notice(epoch, 3))
        assert wait_for(
            lambda: all(s.status().configs_refused > n for s, n in zip(syncs, refused))
        ), [s.status() for s in syncs]
        assert all(s.status().configs_applied == 1 for s in syncs)

        # The published config runs, with the consecutive failure kept: 1 + 2
        # failures stay closed (the creation config tripped at 2, the
        # planted one at 1), the 4th trips.
        for _ in range(2):
            with pytest.raises(Boom):
                a.call(fail)
        assert a.state is State.CLOSED
        with pytest.raises(Boom):
            a.call(fail)
        assert a.state is State.OPEN
    finally:
        for s in syncs:
            s.close()
        for r in regs:
            r.close()
