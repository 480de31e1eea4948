"""The group guard example of the top-level README, as a complete program
(the README block is the region between the readme markers;
ci/readme_snippets.py keeps them equal, tests/test_readme.py runs this file).

Ten breakers, one per host of a pool, at most 30 % of them OPEN at once:
every host fails, three trip, and the other seven keep serving; their
trips are refused and counted.
"""

import circuit


class HostDown(Exception):
    pass


def call_host(host):
    raise HostDown(host)  # the whole pool looks down from here


# readme:begin group
pool = circuit.Registry(consecutive_failures=3)
pool.set_group("backends", max_open_fraction=0.3)   # or max_open=3
hosts = [f"backend-{i}" for i in range(10)]
for host in hosts:
    pool.join_group(host, "backends")               # before first use

def fetch(host):
    with pool[host]:                                # refused trips keep it CLOSED
        return call_host(host)

refused = []
pool.add_listener(lambda e: e.reason is circuit.Reason.SHADOW_TRIP and refused.append(e.name))
# ... later: pool.group("backends").refused_trips, and in pool.prometheus():
# circuit_group_open, circuit_group_max_open, circuit_group_refused_trips_total
# readme:end group


if __name__ == "__main__":
    for _ in range(3):
        for host in hosts:
            try:
                fetch(host)
            except HostDown:
                pass
    g = pool.group("backends")
    open_hosts = [h for h in hosts if pool[h].state is circuit.State.OPEN]
    print(f"group backends: {g.open} of {g.members} open (at most {g.max_open}); "
          f"{g.refused_trips} trips refused: {sorted(set(refused))}")
    assert len(open_hosts) == 3 and g.open == 3 and g.max_open == 3, (open_hosts, g)
    assert g.refused_trips == 7 and len(refused) == 7, (g, refused)
    assert 'circuit_group_refused_trips_total{group="backends"} 7' in pool.prometheus()
