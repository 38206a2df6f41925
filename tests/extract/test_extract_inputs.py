"""Inputs: files, directories, globs, stdin; plain, gzip and zstd; and what cannot be read."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from tests.extract.extractsupport import dump, events_of, ids_of, request, roots_in, run_cli, write

WANTED = request("req_in", user=5, depth=3, fail=True)


def _log_bytes() -> bytes:
    return dump(request("req_a").events + WANTED.events + request("req_b").events)


@pytest.mark.parametrize("kind", ["gzip", "zstd", "zstd-multiframe"])
def test_compressed_inputs(tmp_path: Path, kind: str) -> None:
    data = _log_bytes()
    if kind == "gzip":
        path = tmp_path / "app.log.gz"
        path.write_bytes(gzip.compress(data))
    elif kind == "zstd":
        path = tmp_path / "app.log.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        half = len(data) // 2
        compressor = zstandard.ZstdCompressor()
        path = tmp_path / "app.log.zst"
        path.write_bytes(compressor.compress(data[:half]) + compressor.compress(data[half:]))
    result = run_cli(path, "--correlation-id", "req_in", "-q")
    assert result.returncode == 0, result.stderr
    assert ids_of(events_of(result.stdout)) == set(WANTED.frames)


def test_compression_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "misnamed.jsonl"
    path.write_bytes(gzip.compress(_log_bytes()))
    result = run_cli(path, "--error", "-q")
    assert roots_in(events_of(result.stdout)) == ["req_in"]


def test_directories_are_searched_recursively_for_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "a" / "app.jsonl", request("req_1").events)
    (logs / "b").mkdir()
    (logs / "b" / "app.log.gz").write_bytes(gzip.compress(dump(request("req_2").events)))
    (logs / "b" / "app.log.1").write_bytes(dump(request("req_3").events))  # rotated
    (logs / "b" / "notes.txt").write_bytes(dump(request("req_not_a_log").events))
    result = run_cli(logs, "-q", "--no-redact")
    assert result.returncode == 0, result.stderr
    # In path order: a/app.jsonl, b/app.log.1, b/app.log.gz; notes.txt is not a log name.
    assert roots_in(events_of(result.stdout)) == ["req_1", "req_3", "req_2"]


def test_globs_are_expanded(tmp_path: Path) -> None:
    write(tmp_path / "svc-a.jsonl", request("req_ga").events)
    write(tmp_path / "svc-b.jsonl", request("req_gb").events)
    write(tmp_path / "other.jsonl", request("req_other").events)
    result = run_cli(str(tmp_path / "svc-*.jsonl"), "-q")
    assert roots_in(events_of(result.stdout)) == ["req_ga", "req_gb"]


@pytest.mark.parametrize("arguments", [[], ["-"]])
def test_stdin(arguments: list[str]) -> None:
    result = run_cli(*arguments, "--correlation-id", "req_in", stdin=gzip.compress(_log_bytes()))
    assert result.returncode == 0, result.stderr
    assert ids_of(events_of(result.stdout)) == set(WANTED.frames)
    assert b"read 1 file" in result.stderr


def test_stdin_and_files_together(tmp_path: Path) -> None:
    path = write(tmp_path / "a.log", request("req_file").events)
    result = run_cli(path, "-", "-q", stdin=dump(request("req_piped").events))
    assert roots_in(events_of(result.stdout)) == ["req_file", "req_piped"]


@pytest.mark.parametrize("argument", ["missing.log", "nothing-*.log"])
def test_missing_inputs_are_errors(tmp_path: Path, argument: str) -> None:
    result = run_cli(tmp_path / argument)
    assert result.returncode == 2
    assert argument.encode() in result.stderr


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path)
    assert result.returncode == 2
    assert b"no log files" in result.stderr


def test_zstd_needs_zstandard_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "app.log.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(_log_bytes()))
    code = ("import sys; sys.modules['zstandard'] = None\n"
            "from pytest_replay.cli.extract_traces import main\n"
            f"raise SystemExit(main([{str(path)!r}, '--error']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert result.returncode == 2
    assert b"pip install zstandard" in result.stderr


def test_corrupt_compressed_input_is_counted_and_others_still_read(tmp_path: Path) -> None:
    good = write(tmp_path / "good.log", WANTED.events)
    bad = tmp_path / "bad.log.gz"
    packed = gzip.compress(dump(request("req_bad").events * 50))
    bad.write_bytes(packed[: len(packed) // 2])
    result = run_cli(bad, good, "--error")
    assert result.returncode == 0, result.stderr
    assert roots_in(events_of(result.stdout)) == ["req_in"]
    assert b"compressed stream is corrupt" in result.stderr
    strict = run_cli(bad, good, "--error", "--strict")
    assert strict.returncode == 2
    assert b"bad.log.gz" in strict.stderr


def test_no_input_on_a_terminal_is_a_usage_error() -> None:
    code = ("import sys, io\n"
            "class Tty(io.BytesIO):\n"
            "    def isatty(self): return True\n"
            "sys.stdin = io.TextIOWrapper(Tty())\n"
            "sys.stdin.isatty = lambda: True\n"
            "from pytest_replay.cli.extract_traces import main\n"
            "raise SystemExit(main(['--error']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert result.returncode == 2
    assert b"no input" in result.stderr
