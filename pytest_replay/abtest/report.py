"""Compare two sides request by request and in aggregate; decide whether B regresses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_replay.abtest.sides import Side
from pytest_replay.abtest.stats import (
    TestResult,
    mann_whitney_u,
    percentile,
    two_proportion_z_test,
)
from pytest_replay.replay.compare import CompareOptions, compare_steps, steps_of

ALPHA = 0.05


@dataclass
class PairVerdict:
    """One request seen on both sides."""

    key: str
    verdict: str  # same | different_outcome | different_calls
    a_outcome: str
    b_outcome: str
    divergence: str | None = None


@dataclass
class Comparison:
    """Everything ``compare-replays`` prints or writes as JSON."""

    a: Side
    b: Side
    pairs: list[PairVerdict] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    errors: TestResult | None = None
    latency: TestResult | None = None
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)

    @property
    def b_regresses(self) -> bool:
        """Whether B is worse than A (the exit status is 1 then)."""
        return bool(self.regressions)


def compare_sides(a: Side, b: Side, *, statistics: bool, options: CompareOptions | None = None
                  ) -> Comparison:
    """Pair requests by root name, classify each pair, and test the aggregates."""
    chosen = options or CompareOptions()
    result = Comparison(a, b)
    for key in sorted(set(a.requests) | set(b.requests)):
        left, right = a.requests.get(key), b.requests.get(key)
        if left is None:
            result.only_b.append(key)
            continue
        if right is None:
            result.only_a.append(key)
            continue
        pair = PairVerdict(key, "same", left.outcome, right.outcome)
        if left.failed != right.failed or left.outcome != right.outcome:
            pair.verdict = "different_outcome"
            if not left.failed and right.failed:
                result.regressions.append(f"{key}: A {left.outcome}, B {right.outcome}")
            elif left.failed and not right.failed:
                result.improvements.append(f"{key}: A {left.outcome}, B {right.outcome}")
        steps_a, _ = steps_of(left.events)
        steps_b, _ = steps_of(right.events)
        if left.events and right.events:
            calls = compare_steps(steps_a, steps_b, chosen)
            if calls.divergence is not None:
                pair.divergence = calls.divergence.headline()
                if pair.verdict == "same":
                    pair.verdict = "different_calls"
        result.pairs.append(pair)
    if statistics:
        _test_aggregates(result)
    elif not result.pairs:
        rate_a = a.failures() / len(a.requests) if a.requests else 0.0
        rate_b = b.failures() / len(b.requests) if b.requests else 0.0
        if rate_b > rate_a:
            result.regressions.append(f"error rate rose from {rate_a:.1%} to {rate_b:.1%}")
    return result


def _test_aggregates(result: Comparison) -> None:
    a, b = result.a, result.b
    result.errors = two_proportion_z_test(a.failures(), len(a.requests), b.failures(),
                                          len(b.requests))
    result.latency = mann_whitney_u(a.latencies_ms(), b.latencies_ms())
    rate_a = a.failures() / len(a.requests) if a.requests else 0.0
    rate_b = b.failures() / len(b.requests) if b.requests else 0.0
    if result.errors.significant(ALPHA):
        message = (f"error rate {rate_a:.1%} -> {rate_b:.1%} (two-proportion z-test, "
                   f"p={result.errors.p_value:.3g})")
        (result.regressions if rate_b > rate_a else result.improvements).append(message)
    median_a = percentile(a.latencies_ms(), 0.5)
    median_b = percentile(b.latencies_ms(), 0.5)
    if result.latency.significant(ALPHA) and median_a is not None and median_b is not None:
        message = (f"median latency {median_a:.1f} ms -> {median_b:.1f} ms (Mann-Whitney U, "
                   f"p={result.latency.p_value:.3g})")
        (result.regressions if median_b > median_a else result.improvements).append(message)


def side_metrics(side: Side) -> dict[str, Any]:
    """Aggregate numbers of one side."""
    latencies = side.latencies_ms()
    total = len(side.requests)
    conversions = [r.converted for r in side.requests.values() if r.converted is not None]
    return {
        "label": side.label,
        "how": side.how,
        "requests": total,
        "errors": side.failures(),
        "error_rate": side.failures() / total if total else None,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "p50_ms": percentile(latencies, 0.5),
        "p90_ms": percentile(latencies, 0.9),
        "p99_ms": percentile(latencies, 0.99),
        "conversion_rate": (sum(conversions) / len(conversions)) if conversions else None,
    }


def as_json(result: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON (``--json``)."""
    out: dict[str, Any] = {
        "a": side_metrics(result.a),
        "b": side_metrics(result.b),
        "pairs": [pair.__dict__ for pair in result.pairs],
        "only_a": result.only_a,
        "only_b": result.only_b,
        "regressions": result.regressions,
        "improvements": result.improvements,
        "b_regresses": result.b_regresses,
    }
    for name in ("errors", "latency"):
        test: TestResult | None = getattr(result, name)
        if test is not None:
            out[f"{name}_test"] = {"test": test.name, "statistic": test.statistic,
                                   "p_value": test.p_value, "alpha": ALPHA,
                                   "beyond_noise": test.significant(ALPHA)}
    return out


def render(result: Comparison, *, unicode: bool = False) -> list[str]:
    """The seed's comparison table, the per-request verdicts and the statement."""
    good, bad = ("✅", "❌") if unicode else ("(better)", "(worse)")
    a, b = side_metrics(result.a), side_metrics(result.b)
    lines = ["Comparison Results:",
             f"{'':<22}{'A':>14}{'B':>14}{'Delta':>16}",
             f"{'Requests:':<22}{a['requests']:>14}{b['requests']:>14}"]

    def row(title: str, key: str, unit: str, lower_is_better: bool = True) -> None:
        left, right = a[key], b[key]
        if left is None and right is None:
            return
        text_a = _fmt(left, unit)
        text_b = _fmt(right, unit)
        delta = ""
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if left:
                change = (right - left) / left
                better = change < 0 if lower_is_better else change > 0
                delta = f"{change:+.0%} {good if better else bad if change else ''}".rstrip()
            elif right:
                delta = f"new {good if not lower_is_better else bad}"
        lines.append(f"{title:<22}{text_a:>14}{text_b:>14}{delta:>16}")

    row("Average Duration:", "mean_ms", "ms")
    row("p50 Duration:", "p50_ms", "ms")
    row("p99 Duration:", "p99_ms", "ms")
    row("Error Rate:", "error_rate", "%")
    row("Conversion Rate:", "conversion_rate", "%", lower_is_better=False)
    lines.append(f"(A: {result.a.how}; B: {result.b.how})")
    if result.pairs:
        counts = {v: sum(1 for p in result.pairs if p.verdict == v)
                  for v in ("same", "different_outcome", "different_calls")}
        lines.append(f"Per request: {counts['same']} same, {counts['different_outcome']} "
                     f"different outcome, {counts['different_calls']} different calls")
        for pair in result.pairs:
            if pair.verdict == "same":
                continue
            lines.append(f"  {pair.verdict.replace('_', ' ')}: {pair.key}: A {pair.a_outcome}; "
                         f"B {pair.b_outcome}")
            if pair.divergence:
                lines.append(f"    {pair.divergence}")
    if result.only_a or result.only_b:
        lines.append(f"Unpaired: {len(result.only_a)} only in A, {len(result.only_b)} only in B")
    for name, test in (("error rate", result.errors), ("latency", result.latency)):
        if test is not None:
            verdict = "beyond noise" if test.significant(ALPHA) else "within noise"
            lines.append(f"{name}: {test.name}, statistic {test.statistic:.3f}, "
                         f"p = {test.p_value:.3g}: {verdict} (alpha {ALPHA})")
    lines.append(_winner(result))
    return lines


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:.1f}{unit}"


def _winner(result: Comparison) -> str:
    if result.regressions and not result.improvements:
        return "Verdict: B regresses: " + "; ".join(result.regressions[:3])
    if result.improvements and not result.regressions:
        return "Winner: B (" + "; ".join(result.improvements[:3]) + ")"
    if result.regressions and result.improvements:
        return ("Mixed: B regresses on " + "; ".join(result.regressions[:2]) + " but improves "
                + "; ".join(result.improvements[:2]))
    return "No difference beyond noise between A and B"
