"""Secrets never reach a written file: redaction is on by default in every writer.

A realistic shop runs under capture (``pytest_replay.configure`` without
``redact=``, to a file and through ``logging``), calling a real partner API on
127.0.0.1. Its recording is then replayed by pytest with ``--replay-update``
(baselines) and again with ``-vv --junitxml`` (the failure report), and by
``replay-telemetry`` (timeline, JSON verdicts, every export format). Every
file those writers produced is scanned for each secret value of the corpus.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
import pytest

from pytest_replay.capture.redact import Redaction
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayEngine
from tests.security.listener import Listener
from tests.security.secret_corpus import SECRETS, Secret, run_shop, write_shop
from tests.security.secsupport import TARGET, Packages, entry, exit_, write_trace

_PYPROJECT: Final = """\
[tool.pytest.ini_options]
pythonpath = ["."]
replay_targets = ["sec_shop"]
replay_paths = ["traces"]
"""


@dataclass(frozen=True)
class Written:
    """Every file the writers produced, by a label saying which writer."""

    files: dict[str, bytes]

    def holding(self, value: str) -> list[str]:
        """``label: ...context...`` for each file that contains ``value``."""
        needle = value.encode()
        hits = []
        for label, data in sorted(self.files.items()):
            at = data.find(needle)
            if at >= 0:
                context = data[max(0, at - 70): at + len(needle) + 20].decode("utf-8", "replace")
                hits.append(f"{label}: ...{context}...")
        return hits


def _console_script(name: str) -> str:
    """The installed console script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"console script {name!r} is not installed (pip install -e .)"
    return found


def _run(command: list[str], cwd: Path, out: Path) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=120,
                          check=False)
    out.write_bytes(done.stdout + done.stderr)
    return done.returncode


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    """Record the shop, then run every writer over the recording; collect what they wrote."""
    project = tmp_path_factory.mktemp("shop-project")
    out = tmp_path_factory.mktemp("writers-output")
    write_shop(project)
    (project / "pyproject.toml").write_text(_PYPROJECT, encoding="utf-8")
    token = next(s.value for s in SECRETS if s.name == "HTTP_RESP_TOKEN")
    cookie = next(s.value for s in SECRETS if s.name == "SET_COOKIE")
    with Listener(token=token, cookie=cookie) as partner:
        run_shop(project, project / "traces" / "shop.jsonl", partner.url, "file")
        run_shop(project, out / "logging-sink.log", partner.url, "logging")
    pytest_cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    _run([*pytest_cmd, "--replay-update", f"--junitxml={out / 'update.xml'}"], project,
         out / "pytest-update.txt")
    _run([*pytest_cmd, "-vv", f"--junitxml={out / 'report.xml'}"], project, out / "pytest-vv.txt")
    cli = [_console_script("replay-telemetry"), "traces/shop.jsonl", "--targets", "sec_shop",
           "--no-color"]
    _run([*cli, "--debug", "--events", "--export", "html", str(out / "timeline.html")], project,
         out / "cli-timeline.txt")
    _run([*cli, "--json", "--export", "perfetto", str(out / "perfetto.json")], project,
         out / "cli-json.txt")
    _run([*cli, "--export", "speedscope", str(out / "speedscope.json")], project,
         out / "cli-speedscope.txt")
    files: dict[str, bytes] = {}
    for base, label in ((project / "traces", "traces"), (out, "output")):
        for path in sorted(base.rglob("*")):
            if path.is_file():
                files[f"{label}/{path.relative_to(base)}"] = path.read_bytes()
    yield Written(files)


def test_every_writer_wrote(written: Written) -> None:
    """The scan means something: capture, baselines, reports and exports all exist."""
    labels = set(written.files)
    for expected in ("traces/shop.jsonl", "output/logging-sink.log", "output/update.xml",
                     "output/report.xml", "output/pytest-vv.txt", "output/cli-timeline.txt",
                     "output/timeline.html", "output/perfetto.json", "output/speedscope.json"):
        assert expected in labels, f"{expected} was not written; have {sorted(labels)}"
    baselines = [label for label in labels if "/.replay-baselines/" in label]
    update_run = written.files["output/pytest-update.txt"].decode()
    assert baselines, f"--replay-update wrote no baseline:\n{update_run}"
    capture = written.files["traces/shop.jsonl"]
    for needle in (b'"function_name":"checkout"', b'"event_type":"http_call"',
                   b'"event_type":"error"', b"[REDACTED]"):
        assert needle in capture, f"the recording lacks {needle!r}"
    assert capture.count(b'"$type":"redacted"') >= 8


@pytest.mark.parametrize("secret", SECRETS, ids=[s.id for s in SECRETS])
def test_secret_never_written(secret: Secret, written: Written) -> None:
    """No file any writer produced holds the secret's value."""
    hits = written.holding(secret.value)
    assert hits == [], (f"secret {secret.name} ({secret.carried}) written to:\n  "
                        + "\n  ".join(hits))


# ---------------------------------------------------------------- redaction settings


@pytest.fixture
def capture_runtime() -> Iterator[MemorySink]:
    """Capture into memory for one test, then put the process's capture state back."""
    from pytest_replay.capture.api import shutdown

    saved = (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
             RUNTIME.sample_rate)
    sink = MemorySink()
    try:
        yield sink
    finally:
        shutdown()
        (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
         RUNTIME.sample_rate) = saved


def _captured(sink: MemorySink) -> bytes:
    return b"".join(sink.lines)


def test_configure_redacts_by_default(capture_runtime: MemorySink) -> None:
    """``configure()`` without ``redact=`` redacts secret names."""
    import pytest_replay as replay

    replay.configure(sink=capture_runtime)
    with replay.request_scope("req_default"):
        replay.variable("password", "default-on-pw-3k2")
        replay.context(api_key="default-on-key-9q1")
    replay.shutdown()
    text = _captured(capture_runtime)
    assert b"variable_change" in text
    assert b"default-on-pw-3k2" not in text
    assert b"default-on-key-9q1" not in text


def test_redact_patterns_hide_matching_values(capture_runtime: MemorySink) -> None:
    """A pattern given to ``Redaction`` hides matching *values*, under any name.

    ``replay_redact_patterns`` is documented as "regexes whose matches every
    writer redacts"; today ``Redaction.patterns`` is only matched against key
    names (capture/redact.py ``_judge``), so the value below is written.
    """
    import pytest_replay as replay

    replay.configure(sink=capture_runtime, redact=Redaction(patterns=[r"sk_live_\w+"]))
    with replay.request_scope("req_patterns"):
        replay.variable("note", "charge with sk_live_patternQ7 now")
    replay.shutdown()
    text = _captured(capture_runtime)
    assert b"variable_change" in text
    assert b"sk_live_patternQ7" not in text


def _replayed_text(tmp_path: Path, config: ReplayConfig, text: str) -> bytes:
    path = write_trace(tmp_path / "t.jsonl", [entry(f"{TARGET}.app", "measure", {"text": text}),
                                              exit_("measure", len(text))])
    result = ReplayEngine(config).replay(load_trace(path).roots[0], check_noise=False)
    return b"".join(orjson.dumps(event) for event in result.replayed)


def test_replay_honours_redact_keys(packages: Packages, tmp_path: Path) -> None:
    """``replay_redact_keys`` applies to what replay writes (baselines come from it)."""
    config = ReplayConfig(targets=(TARGET,), redact_keys=("text",))
    text = _replayed_text(tmp_path, config, "key-redacted-value-4m")
    assert b'"function_name":"measure"' in text
    assert b"key-redacted-value-4m" not in text


def test_replay_honours_redact_patterns(packages: Packages, tmp_path: Path) -> None:
    """``replay_redact_patterns`` applies to what replay writes, too.

    Today ``engine._capturing_into`` builds ``Redaction(keys=config.redact_keys)``
    and drops ``config.redact_patterns``.
    """
    config = ReplayConfig(targets=(TARGET,), redact_patterns=(r"sk_live_\w+",))
    text = _replayed_text(tmp_path, config, "token sk_live_replayP4")
    assert b'"function_name":"measure"' in text
    assert b"sk_live_replayP4" not in text
