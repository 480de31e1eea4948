"""The live-reconfiguration example of the README ("Live
reconfiguration"), as a complete program (the README block is the region
between the readme markers; ci/readme_snippets.py keeps them equal,
tests/test_reconfigure.py runs this file).

A registry breaker trips on half of its last 100 calls failing. 60 calls
in, 15 of them failures, an operator tightens it: a 20 % failure rate over
the last 40 calls. The breaker keeps its state, counters and its 40 most
recent outcomes (10 failures of them, 25 %) and trips on the next failure under
the new threshold. Time is simulated.
"""

import circuit

clock = circuit.ManualClock()
partner_up = True


def http_get(path):
    if not partner_up:
        raise RuntimeError("503")
    return f"offer from {path}"


registry = circuit.Registry(
    consecutive_failures=0, failure_rate=0.5, count_window=100, minimum_calls=20, clock=clock
)


def main():
    global partner_up
    partner = registry["partner"]
    for i in range(60):
        partner_up = i % 4 != 0  # one call in four fails: 15 of 60
        try:
            partner.call(http_get, "/offers")
        except RuntimeError:
            pass
    before = partner.metrics()
    assert before.window_calls == 60 and partner.state is circuit.State.CLOSED

    # readme:begin reconfigure
    # Tighten the running breaker: it keeps its state, counters and its 40
    # most recent outcomes; calls in flight finish under the old config.
    registry.reconfigure("partner", failure_rate=0.2, count_window=40)

    # Or one breaker held directly (options alone change its current ones):
    # partner.reconfigure(failure_rate=0.2, count_window=40)
    # A config the library refuses raises circuit.ConfigError and changes nothing.
    # readme:end reconfigure

    after = partner.metrics()
    assert after.window_calls == 40 and after.failure_rate == 10 / 40, after
    assert after.successes == before.successes and after.generation == before.generation
    print(f"reconfigured: window {after.window_calls} calls, failure rate {after.failure_rate:.0%}")
    partner_up = False
    try:
        partner.call(http_get, "/offers")
    except RuntimeError:
        pass
    assert partner.state is circuit.State.OPEN
    print("the next failure trips at 20 %: partner is open")
    registry.close()


if __name__ == "__main__":
    main()
