"""The two tests ``compare-replays`` states its A/B verdicts with, in plain Python.

- Error rates: the two-proportion z-test (pooled), two-sided.
- Latencies: the Mann-Whitney U test with the normal approximation, tie
  correction and continuity correction, two-sided. It assumes nothing about
  the shape of the latency distribution, which is rarely normal.

Both are standard; SciPy gives the same p-values (checked in the tests against
hand-computed references), but it is not worth a dependency for two formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TestResult:
    """A test's statistic, its two-sided p-value, and what it was."""

    name: str
    statistic: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the difference is beyond noise at level ``alpha``."""
        return self.p_value < alpha


def _two_sided_normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def two_proportion_z_test(failures_a: int, total_a: int, failures_b: int,
                          total_b: int) -> TestResult:
    """Is the failure rate of B different from A's? (pooled z-test, two-sided)."""
    if total_a <= 0 or total_b <= 0:
        return TestResult("two-proportion z-test", 0.0, 1.0)
    p_a, p_b = failures_a / total_a, failures_b / total_b
    pooled = (failures_a + failures_b) / (total_a + total_b)
    variance = pooled * (1 - pooled) * (1 / total_a + 1 / total_b)
    if variance <= 0:
        return TestResult("two-proportion z-test", 0.0, 1.0)
    z = (p_b - p_a) / math.sqrt(variance)
    return TestResult("two-proportion z-test", z, _two_sided_normal_p(z))


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    index = 0
    while index < len(order):
        end = index
        while end + 1 < len(order) and values[order[end + 1]] == values[order[index]]:
            end += 1
        average = (index + end) / 2 + 1
        for position in range(index, end + 1):
            ranks[order[position]] = average
        if end > index:
            ties.append(end - index + 1)
        index = end + 1
    return ranks, ties


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Do B's values tend to differ from A's? (Mann-Whitney U, normal approximation)."""
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return TestResult("Mann-Whitney U", 0.0, 1.0)
    ranks, ties = _ranks([*a, *b])
    rank_sum_a = sum(ranks[:n_a])
    u_a = rank_sum_a - n_a * (n_a + 1) / 2
    mean = n_a * n_b / 2
    total = n_a + n_b
    tie_term = sum(t**3 - t for t in ties) / (total * (total - 1)) if total > 1 else 0.0
    variance = n_a * n_b / 12 * ((total + 1) - tie_term)
    if variance <= 0:
        return TestResult("Mann-Whitney U", u_a, 1.0)
    z = (u_a - mean - math.copysign(0.5, u_a - mean)) / math.sqrt(variance) if u_a != mean \
        else 0.0
    return TestResult("Mann-Whitney U", u_a, _two_sided_normal_p(z))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
