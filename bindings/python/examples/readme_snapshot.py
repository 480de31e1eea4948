"""The snapshot example of the README ("Snapshot and restore"), as a
complete program (the README block is the region between the readme
markers; ci/readme_snippets.py keeps them equal, tests/test_readme.py runs
this file).

A service's breaker to its partner opens; the service shuts down and saves
the breaker; 3 s later (of wall clock) it starts again and restores it: the
breaker is still OPEN, for the 27 s that were left, so the restart does not
send traffic at a partner that is down. Time is simulated: a manual clock is
the wall clock too, so the second "process" runs on a clock 3 s later.
"""

import os
import sys
import tempfile

import circuit

WALL = 1_780_000_000.0  # seconds since the epoch
clock = circuit.ManualClock(WALL)


# readme:begin snapshot
def start_partner_breaker(path):
    partner = circuit.Breaker(
        name="partner",
        consecutive_failures=3,
        open_duration=30,
        jitter=0,
        clock=clock,  # simulated time for this example; leave it out in production
    )
    try:
        with open(path, "rb") as f:
            partner.restore(f.read())   # an OPEN breaker stays open for what was left
    except FileNotFoundError:
        pass                            # first start: a fresh breaker
    except circuit.SnapshotError as e:  # another config or version, truncated, corrupt
        print(f"starting fresh: {e}", file=sys.stderr)
    return partner


def save_on_shutdown(partner, path):
    with open(path, "wb") as f:
        f.write(partner.snapshot())     # a few hundred bytes
# readme:end snapshot


def main():
    global clock
    path = os.path.join(tempfile.mkdtemp(), "partner.snap")
    first = start_partner_breaker(path)
    for _ in range(3):
        try:
            first.call(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
    assert first.state is circuit.State.OPEN
    save_on_shutdown(first, path)
    first.close()

    clock = circuit.ManualClock(WALL + 3)  # the next process, 3 s later
    second = start_partner_breaker(path)
    try:
        second.call(lambda: "hot offer")
        raise AssertionError("a restored OPEN breaker admitted a call")
    except circuit.CircuitOpenError as e:
        print(f"after the restart: {second.state.label}, retry after {e.retry_after:.0f} s")
        assert e.retry_after == 27
    second.close()
    os.remove(path)


if __name__ == "__main__":
    main()
