"""The privacy-utility Pareto frontier: runs that no other run beats on both ε and accuracy."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable


@dataclass(frozen=True)
class Point:
    """One finished run as a point: lower ε is better, higher accuracy is better."""

    epsilon: float
    accuracy: float
    key: Hashable = None


def pareto_frontier(points: Iterable[Point]) -> tuple[Point, ...]:
    """The non-dominated points, ordered by ε; infinite ε (baselines) and NaN accuracy are left out."""
    usable = [p for p in points
              if math.isfinite(p.epsilon) and p.accuracy is not None and math.isfinite(p.accuracy)]
    usable.sort(key=lambda p: (p.epsilon, -p.accuracy))
    frontier: list[Point] = []
    best = -math.inf
    for point in usable:
        if point.accuracy > best:
            frontier.append(point)
            best = point.accuracy
    return tuple(frontier)


def dominated(point: Point, others: Iterable[Point]) -> bool:
    """Whether some other point has ε no larger and accuracy no smaller, and is better in one."""
    for other in others:
        if other is point:
            continue
        if (other.epsilon <= point.epsilon and other.accuracy >= point.accuracy
                and (other.epsilon < point.epsilon or other.accuracy > point.accuracy)):
            return True
    return False
