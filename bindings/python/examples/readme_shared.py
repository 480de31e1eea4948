"""README "Host-shared breakers", Python: worker processes (fork, or spawn
with the segment opened again by name) share one breaker; run as a program
it asserts that failures in a forked worker open the parent's breaker."""

import os

import circuit

name = f"readme-{os.getpid()}"
# readme:begin shared
# Every worker process opens the same segment (/dev/shm/circuit.<name>,
# created by the first) with the same config.
segment = circuit.Segment(name, consecutive_failures=3)
payments = segment.breaker("payments")

if os.fork() == 0:  # a worker: same breaker, same state
    for _ in range(3):
        try:
            with payments:
                raise ConnectionError("partner down")
        except ConnectionError:
            pass
    os._exit(0)
os.wait()
print(payments.state)  # open: the worker's failures opened it here too
# readme:end shared
assert payments.state is circuit.State.OPEN
os.unlink(f"/dev/shm/circuit.{name}")
