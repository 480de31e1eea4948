"""The example of bindings/python/README.md, as a complete program (the
README block is the region between the readme markers; ci/readme_snippets.py
keeps them equal, tests/test_readme.py runs this file).

A 404 is the caller's fault (excluded, so IGNORED); three 503s open the
breaker; from then on every form answers from the fallback or raises
CircuitOpenError without calling the partner.
"""

import asyncio

COLD_OFFER = "cold offer"
partner_calls = []


class HttpError(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def http_get(path):
    partner_calls.append(path)
    raise HttpError(404 if path.endswith("/nobody") else 503)


async def http_get_async(path):
    return http_get(path)


# readme:begin tour
import circuit

partner = circuit.Breaker(
    name="partner",
    consecutive_failures=3,      # any Config keyword (see below)
    open_duration=15,            # seconds (int, float or timedelta)
    exclude=[lambda e: getattr(e, "status", 500) < 500],   # 4xx: not the partner's fault
)

@partner(fallback=lambda user: COLD_OFFER)       # plain or async def
def fetch_offer(user):
    return http_get(f"/offers/{user}")

def ping():
    with partner:                                 # raises CircuitOpenError when refused
        http_get("/ping")

async def aping():
    async with partner:
        await http_get_async("/ping")

def offer_for(user):
    return partner.call(http_get, f"/offers/{user}", fallback=lambda path: COLD_OFFER)

async def offer_for_async(user):
    return await partner.acall(http_get_async, f"/offers/{user}", fallback=lambda path: COLD_OFFER)
# readme:end tour


def refused(fn):
    try:
        fn()
    except circuit.CircuitOpenError as e:
        return e.reason
    except HttpError as e:
        return e.status
    return None


if __name__ == "__main__":
    assert refused(lambda: offer_for("nobody")) == 404   # a 4xx is re-raised, counted as ignored
    assert [refused(lambda: fetch_offer(u)) for u in ("ada", "bob", "cy")] == [503] * 3
    assert partner.state is circuit.State.OPEN, partner.state
    before = len(partner_calls)
    assert refused(ping) == "open"
    assert refused(lambda: asyncio.run(aping())) == "open"
    assert offer_for("dee") == COLD_OFFER
    assert asyncio.run(offer_for_async("dee")) == COLD_OFFER
    assert len(partner_calls) == before, partner_calls
    m = partner.metrics()
    print(f"partner called {len(partner_calls)} times; metrics: {m.as_dict()}")
    assert m.ignored == 1 and m.failures == 3, m.as_dict()
