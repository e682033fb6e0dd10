"""Routing by a deterministic hash of the request id."""

import subprocess
import sys

import numpy as np
import pytest

from vigil.groups.routing import RoutingError, assign, position


def test_100k_requests_land_within_half_a_percent_of_a_90_10_split():
    ids = [f"req-{i}" for i in range(100_000)]
    got = assign("fraud", ids, {11: 0.9, 42: 0.1})
    share = np.mean(got == 42)
    assert abs(share - 0.1) < 0.005, share
    # the same ids again: the same members, element for element
    assert np.array_equal(got, assign("fraud", ids, {11: 0.9, 42: 0.1}))


def test_assignment_is_stable_across_processes():
    """Python's hash() is salted per process; ours must not be."""
    code = "from vigil.groups.routing import assign; print(list(assign('g', ['a', 'b', 'c', 'd', 'e'], {1: 0.5, 2: 0.5})))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(outs) == 1
    assert outs.pop().strip() == str(list(assign("g", ["a", "b", "c", "d", "e"], {1: 0.5, 2: 0.5})))


def test_raising_a_challenger_weight_only_moves_requests_towards_it():
    ids = [str(i) for i in range(20_000)]
    before = assign("g", ids, {1: 0.9, 2: 0.1})
    after = assign("g", ids, {1: 0.8, 2: 0.2})
    moved = before != after
    assert np.all(after[moved] == 2)  # nobody left the challenger
    assert abs(moved.mean() - 0.1) < 0.01


def test_group_salt_makes_splits_independent():
    ids = [str(i) for i in range(10_000)]
    a = assign("g1", ids, {1: 0.5, 2: 0.5})
    b = assign("g2", ids, {1: 0.5, 2: 0.5})
    assert 0.45 < np.mean(a == b) < 0.55
    assert 0 <= position("g", "x") < 1


@pytest.mark.parametrize("weights, match", [
    pytest.param({1: 0.9, 2: 0.2}, "sum to 1.1", id="over"),
    pytest.param({}, "no routed members", id="empty"),
    pytest.param({1: 1.5, 2: -0.5}, "between 0 and 1", id="out-of-range"),
])
def test_bad_weights_are_refused(weights, match):
    with pytest.raises(RoutingError, match=match):
        assign("g", ["a"], weights)
