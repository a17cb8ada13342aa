"""The Pareto frontier of (ε, accuracy) points."""
from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from dpcore.pareto import Point, dominated, pareto_frontier


def test_frontier_keeps_only_undominated_points_in_epsilon_order() -> None:
    points = [Point(1.0, 0.80, "a"), Point(2.0, 0.85, "b"), Point(1.5, 0.70, "c"), Point(3.0, 0.84, "d"),
              Point(0.5, 0.60, "e"), Point(math.inf, 0.99, "baseline"), Point(1.0, 0.75, "a2")]
    assert [p.key for p in pareto_frontier(points)] == ["e", "a", "b"]


def test_empty_input_gives_empty_frontier() -> None:
    assert pareto_frontier([]) == ()


@given(st.lists(st.tuples(st.floats(0.01, 50), st.floats(0, 1)), max_size=30))
def test_frontier_is_exactly_the_undominated_set(raw: list[tuple[float, float]]) -> None:
    points = [Point(e, a, i) for i, (e, a) in enumerate(raw)]
    frontier = pareto_frontier(points)
    for p in frontier:
        assert not dominated(p, points)
    # Every undominated point is on the frontier or ties one exactly.
    for p in points:
        if not dominated(p, points):
            assert any(q.epsilon == p.epsilon and q.accuracy == p.accuracy for q in frontier)
