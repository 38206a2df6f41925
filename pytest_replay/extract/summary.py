"""The few lines ``extract-traces`` prints on stderr: what it read, wrote, redacted, skipped."""

from __future__ import annotations

from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.engine import Report
from pytest_replay.extract.output import LISTED
from pytest_replay.extract.problems import DESCRIPTIONS, line_numbers, located

SHOWN = LISTED
"""Written files listed by name; past that, a count."""
RULE_NAMES = {"secret_key": "secret key", "secret_in_text": "secret in text",
              "url_password": "password in URL", "too_deep": "nested too deep"}


def size(count: int) -> str:
    """Bytes in the unit people read."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - loop always returns


def summary(report: Report, criteria: Criteria) -> list[str]:
    """The lines to print after a run (errors excepted, which the caller reports)."""
    out: list[str] = []
    speed = report.log_bytes / report.seconds if report.seconds > 0 else 0.0
    files = len(report.sources)
    read = (f"read {files} file{'s' * (files != 1)} ({size(report.log_bytes)}) in "
            f"{report.seconds:.2f} s, {size(int(speed))}/s; {report.passes} "
            f"pass{'es' * (report.passes != 1)}, {report.lines_parsed} lines parsed")
    if report.requests:
        count = report.requests
        out.append(f"extract-traces: {count} request{'s' * (count != 1)}, "
                   f"{report.events} events; {read}")
        written = [record for record in report.written if record.path is not None]
        shown = written if count <= SHOWN else written[: SHOWN - 1]
        out.extend(f"  {record.root}: {record.events} events -> {record.path}"
                   for record in shown)
        if written and len(shown) < count:
            out.append(f"  ... and {count - len(shown)} more")
    else:
        out.append(f"extract-traces: no request matched {criteria.describe()}; {read}")
        if report.missing_ids:
            out.append("  no line mentions " + ", ".join(report.missing_ids))
    out.extend(redaction_lines(report))
    out.extend(problem_lines(report))
    return out


def redaction_lines(report: Report) -> list[str]:
    """What was redacted, by rule, with counts (and which keys, for secret keys)."""
    redactor = report.redactor
    if redactor is None:
        if report.requests:
            return ["extract-traces: not redacted (--no-redact): this output may hold "
                    "personal data"]
        return []
    if not redactor.counts:
        return ["extract-traces: redaction on; nothing to redact was found"]
    parts = []
    for rule, count in redactor.counts.most_common():
        name = RULE_NAMES.get(rule, rule)
        if rule == "secret_key" and redactor.secret_keys:
            keys = ", ".join(f"{key} {n}" for key, n in redactor.secret_keys.most_common(6))
            name = f"{name} ({keys})"
        parts.append(f"{name}: {count}")
    total = sum(redactor.counts.values())
    return [f"extract-traces: redacted {total} value{'s' * (total != 1)}: " + "; ".join(parts)]


def problem_lines(report: Report) -> list[str]:
    """Counts of skipped lines by kind, and the first few as ``file:line``."""
    problems = report.problems
    if not problems.total:
        return []
    kinds = ", ".join(f"{DESCRIPTIONS[kind]}: {count}"
                      for kind, count in problems.counts.most_common())
    out = [f"extract-traces: skipped {problems.total} unusable "
           f"line{'s' * (problems.total != 1)} ({kinds})"]
    lines = line_numbers(report.sources, (p.position for p in problems.examples))
    out.extend(f"  {located(report.sources, problem, lines)}" for problem in problems.examples)
    return out
