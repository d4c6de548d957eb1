"""The container lifecycle state machine: exactly DESIGN's transitions, errors name both states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.pod import ContainerState
from shoal.runtime import InvalidTransition, transition

STATES = [s for s in ContainerState if s is not ContainerState.WAITING]
LEGAL = {
    ("Created", "Running"),
    ("Running", "Paused"),
    ("Paused", "Running"),
    ("Running", "Stopped"),
    ("Stopped", "Running"),
    ("Stopped", "Removed"),
    ("Created", "Removed"),
}


@given(st.sampled_from(STATES), st.sampled_from(STATES))
def test_only_designed_transitions_are_allowed(current: ContainerState, target: ContainerState) -> None:
    if (current.value, target.value) in LEGAL:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as err:
            transition(current, target, "c1")
        assert current.value in str(err.value) and target.value in str(err.value)
        assert "'c1'" in str(err.value)


def test_error_names_both_states_in_order_and_the_way_out() -> None:
    with pytest.raises(
        InvalidTransition, match=r"cannot go from Paused to Removed \(from Paused it can go to Running\)"
    ):
        transition(ContainerState.PAUSED, ContainerState.REMOVED)


def test_removed_is_final() -> None:
    with pytest.raises(InvalidTransition, match="it is final"):
        transition(ContainerState.REMOVED, ContainerState.RUNNING)
