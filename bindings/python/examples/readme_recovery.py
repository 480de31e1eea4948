"""The ramp-up example of the README ("Recovery after an outage"), as a
complete program (the README block is the region between the readme
markers; ci/readme_snippets.py keeps them equal, tests/test_recovery.py
runs this file).

Three 503s open the breaker; about 15 s later one probe succeeds and closes it;
for the next minute only a rising share of offers calls the partner (10 %
in the first 10 s step), the rest get the cold offer; after the minute every
offer calls the partner again. Time is simulated.
"""

import circuit

COLD_OFFER = "cold offer"
clock = circuit.ManualClock()
healthy = False
partner_calls = []


def http_get(path):
    partner_calls.append(path)
    if not healthy:
        raise RuntimeError("503")
    return f"hot offer from {path}"


# readme:begin ramp
partner = circuit.Breaker(
    name="partner",
    consecutive_failures=3,
    open_duration=15,
    ramp_start=0.1,       # after a recovery admit 10 % of calls ...
    ramp_duration=60,     # ... rising to all of them over a minute ...
    ramp_steps=6,         # ... in six 10 s steps (0, the default: linearly)
    clock=clock,          # simulated time for this example; leave it out in production
)

def offer_for(user):
    try:
        return partner.call(http_get, f"/offers/{user}")
    except circuit.CircuitOpenError:   # its .reason: "open", ... or "ramp_limited"
        return COLD_OFFER

# partner.metrics().ramp_fraction: the share admitted now (0 when no ramp runs)
# readme:end ramp


def main():
    global healthy
    for _ in range(3):
        try:
            offer_for("ada")
        except RuntimeError:
            pass
    assert partner.state is circuit.State.OPEN
    clock.advance(17)  # 15 s, give or take the default 10 % jitter
    healthy = True
    assert offer_for("probe").startswith("hot")  # the probe closes the breaker
    before = len(partner_calls)
    offers = [offer_for("bob") for _ in range(1000)]
    hot = len(partner_calls) - before
    print(f"ramping: {partner.metrics().ramp_fraction:.0%} admitted, {hot} of 1000 offers hot")
    assert 92 <= hot <= 108 and offers.count(COLD_OFFER) == 1000 - hot
    assert partner.metrics().rejected_ramp_limited == 1000 - hot
    clock.advance(60)
    assert all(offer_for("cy").startswith("hot") for _ in range(100))
    print(f"after the ramp: {partner.metrics().ramp_fraction:.0%} ramp, every offer hot")
    partner.close()


if __name__ == "__main__":
    main()
