"""The Python example of the top-level README, as a complete program (the
README block is the region between the readme markers; ci/readme_snippets.py
keeps them equal, tests/test_readme.py runs this file).

The partner fails three times, which opens the breaker: later offers come
from the fallback without calling the partner, and `with partner:` raises.
"""

COLD_OFFER = "cold offer"
partner_calls = []


class PartnerDown(Exception):
    status = 503


def http_get(path):
    partner_calls.append(path)
    raise PartnerDown(path)


def ping_partner():
    http_get("/ping")


# readme:begin quickstart
import circuit

partner = circuit.Breaker(consecutive_failures=3, open_duration=15, name="partner")

@partner(fallback=lambda user: COLD_OFFER)
def fetch_offer(user):
    return http_get(f"/offers/{user}")

def ping():
    with partner:                       # or: async with partner / partner.call(fn)
        ping_partner()
# readme:end quickstart


def outcome(fn, *args):
    try:
        return fn(*args)
    except PartnerDown:
        return "failed"
    except circuit.CircuitOpenError as e:
        return f"refused ({e.reason})"


if __name__ == "__main__":
    offers = [outcome(fetch_offer, user) for user in ("ada", "bob", "cy", "dee")]
    pinged = outcome(ping)
    print(f"partner called {len(partner_calls)} times; offers: {offers}; ping: {pinged}")
    assert offers == ["failed"] * 3 + [COLD_OFFER], offers
    assert pinged == "refused (open)", pinged
    assert len(partner_calls) == 3, partner_calls
    assert partner.state is circuit.State.OPEN, partner.state
