"""Route diffs for host-gw: only shoal's routes change, and bad input names the entry."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.net import RouteError, plan_routes
from shoal.net.routes import RoutePlan


def test_add_replace_remove() -> None:
    current = {"10.77.2.0/24": "198.18.77.2", "10.77.3.0/24": "198.18.77.3", "10.77.4.0/24": "198.18.77.4"}
    desired = {"10.77.2.0/24": "198.18.77.2", "10.77.3.0/24": "198.18.77.33", "10.77.5.0/24": "198.18.77.5"}
    assert plan_routes(current, desired) == RoutePlan(
        add=(("10.77.5.0/24", "198.18.77.5"),),
        replace=(("10.77.3.0/24", "198.18.77.33"),),
        remove=("10.77.4.0/24",),
    )
    assert plan_routes(desired, desired).empty


@pytest.mark.parametrize(
    ("desired", "needle"),
    [
        ({"10.77.2.1/24": "198.18.77.2"}, "pod CIDR '10.77.2.1/24'"),
        ({"10.77.2.0/24": "node-b"}, "gateway 'node-b' is not an IP address"),
        ({"10.77.2.0/24": "fd00::2"}, "is IPv6 but the CIDR is IPv4"),
    ],
)
def test_bad_desired_routes_name_the_entry(desired: dict[str, str], needle: str) -> None:
    with pytest.raises(RouteError) as err:
        plan_routes({}, desired)
    assert needle in str(err.value)


nets = st.integers(0, 255).map(lambda i: f"10.77.{i}.0/24")
gws = st.integers(1, 254).map(lambda i: f"198.18.77.{i}")


@given(st.dictionaries(nets, gws, max_size=12), st.dictionaries(nets, gws, max_size=12))
def test_applying_the_plan_reaches_desired(current: dict[str, str], desired: dict[str, str]) -> None:
    plan = plan_routes(current, desired)
    after = {c: g for c, g in current.items() if c not in plan.remove}
    assert not set(c for c, _ in plan.add) & set(current)
    after |= dict(plan.add) | dict(plan.replace)
    assert after == desired
    assert all(ipaddress.ip_network(c) for c in after)
