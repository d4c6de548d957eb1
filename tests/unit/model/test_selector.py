from __future__ import annotations

import pytest

from shoal.model import LabelSelector, SelectorError, from_label_selector, parse_selector
from shoal.model.meta import LabelSelectorRequirement


@pytest.mark.parametrize(("text", "labels", "matches"), [
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app==web,tier!=db", {"app": "web", "tier": "cache"}, True),
    ("tier!=db", {}, True),
    ("env in (a, b)", {"env": "b"}, True),
    ("env in (a,b)", {}, False),
    ("env notin (a,b)", {"env": "c"}, True),
    ("env notin (a,b)", {}, True),
    ("legacy", {"legacy": ""}, True),
    ("!legacy", {"legacy": "x"}, False),
    ("shoal.io/zone=plant-a", {"shoal.io/zone": "plant-a"}, True),
    ("", {"anything": "x"}, True),
])
def test_string_selectors(text: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["app=(", "a b", "in (x)"])
def test_bad_selectors_name_the_term(text: str) -> None:
    with pytest.raises(SelectorError, match="cannot parse"):
        parse_selector(text)


def test_structured_selector() -> None:
    selector = from_label_selector(LabelSelector(
        match_labels={"app": "web"},
        match_expressions=[LabelSelectorRequirement(key="tier", operator="NotIn", values=["db"])]))
    assert selector.matches({"app": "web", "tier": "front"})
    assert not selector.matches({"app": "web", "tier": "db"})
    with pytest.raises(SelectorError, match="In, NotIn, Exists, DoesNotExist"):
        from_label_selector(LabelSelector(match_expressions=[LabelSelectorRequirement(key="a", operator="Has")]))
