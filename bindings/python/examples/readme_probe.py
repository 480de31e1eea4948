"""The active health probe example of the README ("Active health probes"),
as a complete program (the README block is the region between the readme
markers; ci/readme_snippets.py keeps them equal, tests/test_readme.py runs
this file).

One failure opens the breaker for 50 ms; the partner's health check fails
once more (the breaker re-opens, open twice as long), then the partner
recovers and the next probe closes the breaker. No user call is made after
the first one. Real time, a fraction of a second.
"""

import time

import circuit

health_checks = []


def partner_health():
    """Stands in for an HTTP GET of the partner's /health."""
    health_checks.append(time.monotonic())
    if len(health_checks) < 2:
        raise ConnectionError("partner still down")


# readme:begin probe
partner = circuit.Breaker(name="partner", consecutive_failures=1, open_duration=0.05)

# While the breaker is OPEN, the library calls partner_health() on its probe
# thread at the open deadline (again at each backed-off deadline after a
# failure), with no user call needed. Returning is a success, raising (or
# returning False) a failure; a success closes the breaker as a half-open
# probe's would.
probe = partner.set_probe(partner_health)
# probe.remove() stops it
# readme:end probe


def main():
    try:
        with partner:
            raise ConnectionError("503")  # the user call that trips it
    except ConnectionError:
        pass
    assert partner.state is circuit.State.OPEN
    deadline = time.monotonic() + 5
    while partner.state is not circuit.State.CLOSED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert partner.state is circuit.State.CLOSED, partner.state
    assert len(health_checks) == 2, health_checks
    print(f"closed by the health probe after {len(health_checks)} checks, no user call")
    probe.remove()
    partner.close()


if __name__ == "__main__":
    main()
