"""Real logs are dirty: unusable lines are counted and skipped, or fatal with --strict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_replay.extract import Criteria
from pytest_replay.extract.problems import StrictError
from pytest_replay.extract.segments import iter_segments
from pytest_replay.extract.sources import Sources, resolve
from tests.extract.extractsupport import (
    dump,
    events_of,
    ids_of,
    request,
    roots_in,
    run_cli,
    run_engine,
)

WANTED = request("req_dirty", user=9, depth=2, fail=True)


def _dirty_log(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A log with every kind of bad line; returns it and the line number of each kind."""
    good = dump(WANTED.events).splitlines()
    other = dump(request("req_clean").events).splitlines()
    bad = {
        "not_json": b'2025-10-31 02:00:01 INFO worker started request_id="req_dirty"',
        "prefixed": b'2025-10-31 02:00:02 INFO {"event_type":"context","correlation_id":'
                    b'"req_dirty","context":{"user_id":9}}',
        "truncated": b'{"event_type":"function_exit","timestamp_ns":1,"correlation_id":'
                     b'"req_dirty","function_na',
        "invalid_utf8": b'{"event_type":"context","correlation_id":"req_dirty","context":'
                        b'{"name":"\xff\xfe"}}',
        "not_event": b'{"level":"info","msg":"no event type","correlation_id":"req_dirty"}',
        "invalid_json": b'{"event_type":"context","correlation_id":"req_dirty",}',
        "array": b'["req_dirty"]',
    }
    lines = [good[0], bad["not_json"], good[1], bad["prefixed"], *other[:3], bad["truncated"],
             good[2], bad["invalid_utf8"], *good[3:5], bad["not_event"], bad["invalid_json"],
             bad["array"], *good[5:], *other[3:], b"", b"   "]
    numbers = {kind: lines.index(line) + 1 for kind, line in bad.items()}
    path = tmp_path / "dirty.log"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")  # BOM and CRLF too
    return path, numbers


@pytest.mark.parametrize("by_id", [True, False], ids=["by id", "by filter"])
def test_bad_lines_are_counted_and_skipped(tmp_path: Path, by_id: bool) -> None:
    log, numbers = _dirty_log(tmp_path)
    criteria = Criteria(correlation_ids=("req_dirty",)) if by_id else Criteria(error=True)
    report, out = run_engine([log], criteria)
    assert ids_of(out) == set(WANTED.frames)
    assert len(out) == len(WANTED.events)  # BOM and CRLF lines are fine
    counts = report.problems.counts
    assert counts["not_json"] == 1
    assert counts["prefixed"] == 1
    assert counts["truncated"] == 1
    assert counts["invalid_utf8"] == 1
    assert counts["not_event"] == 2  # no event_type, and a JSON array
    assert counts["invalid_json"] == 1
    assert report.problems.total == 7
    assert numbers["not_json"] == 2


@pytest.mark.parametrize("selection", [["--correlation-id", "req_dirty"], ["--error"]],
                         ids=["by id", "by filter"])
def test_summary_names_kinds_and_lines(tmp_path: Path, selection: list[str]) -> None:
    log, numbers = _dirty_log(tmp_path)
    result = run_cli(log, *selection)
    assert result.returncode == 0
    assert ids_of(events_of(result.stdout)) == set(WANTED.frames)
    summary = result.stderr.decode()
    assert "skipped 7 unusable lines" in summary
    assert "JSON after a log prefix (only whole-line JSON objects are read): 1" in summary
    assert f"dirty.log:{numbers['not_json']}: not JSON" in summary
    assert f"dirty.log:{numbers['prefixed']}: JSON after a log prefix" in summary


def test_strict_stops_at_the_first_bad_line_with_its_place(tmp_path: Path) -> None:
    log, numbers = _dirty_log(tmp_path)
    result = run_cli(log, "--correlation-id", "req_dirty", "--strict")
    assert result.returncode == 2
    assert result.stdout == b""
    assert re.search(rb"--strict: .*dirty\.log:%d: not JSON" % numbers["not_json"], result.stderr)


def test_strict_passes_clean_logs(tmp_path: Path) -> None:
    log = tmp_path / "clean.log"
    log.write_bytes(dump(WANTED.events))
    result = run_cli(log, "--strict", "--error", "-q")
    assert result.returncode == 0
    assert roots_in(events_of(result.stdout)) == ["req_dirty"]


def test_strict_reports_a_broken_entry_line_found_by_the_graph(tmp_path: Path) -> None:
    events = dump(request("req_one").events).splitlines()
    broken = events[1][:-1] + b',}'  # the root entry, with a trailing comma
    log = tmp_path / "app.log"
    log.write_bytes(b"\n".join([*events[:1], broken, *events[2:]]) + b"\n")
    report, _out = run_engine([log], Criteria(limit=5))
    assert report.problems.counts["invalid_json"] == 1
    with pytest.raises(StrictError) as caught:
        run_engine([log], Criteria(limit=5), strict=True)
    assert caught.value.location.startswith(f"{log}:2: ")


def test_an_over_long_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    log.write_bytes(b'{"event_type":"context","x":"' + b"a" * 5000 + b'"}\n'
                    + dump(WANTED.events))
    too_long: list[int] = []
    with Sources() as sources:
        resolve([str(log)], None, sources)
        lines = [raw for seg in iter_segments(sources.items[0], 0, chunk_size=256,
                                              on_long_line=too_long.append, max_line=1000)
                 for _first, raw in seg.lines()]
    assert too_long == [0]
    assert len(lines) == len(WANTED.events)
