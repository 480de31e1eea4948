"""README "Host-shared breakers", Python: worker processes (fork, or spawn
with the segment opened again by name) share one breaker, and registries on
the segment share one breaker per name; run as a program it asserts that
failures in a forked worker open the parent's breaker, through a breaker
and through a registry of its own on the segment."""

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

# readme:begin registry
# A registry on the segment: registry[name] is the segment's breaker of
# that name, so the host has one breaker per name.
registry = segment.registry(max_breakers=1000)

if os.fork() == 0:  # a worker with a registry of its own on the segment
    mine = circuit.Segment(name, consecutive_failures=3).registry()
    for _ in range(3):
        try:
            with mine["search"]:
                raise ConnectionError("search down")
        except ConnectionError:
            pass
    os._exit(0)
os.wait()
print("search:", registry["search"].state)  # open here too
# readme:end registry
assert registry["search"].state is circuit.State.OPEN
assert registry.names() == ["search"]
os.unlink(f"/dev/shm/circuit.{name}")
