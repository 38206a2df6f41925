"""pytest plugin: every recorded request in ``traces/`` becomes a test item.

This module only wires things up (options, ini keys, hooks, fixtures, the
collector); the replay engine does the work and knows nothing of pytest.
Which setting wins: the command line (``--replay-targets``), then the ini
file (``replay_targets``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_replay.config import INI_KEYS, ConfigError, ReplayConfig, from_values

pytest.register_assert_rewrite("pytest_replay.assertion")

if TYPE_CHECKING:
    from pytest_replay.model import Root
    from pytest_replay.replay.engine import ReplayEngine, ReplayResult

STASH_KEY: Final = pytest.StashKey["ReplaySession"]()
STATUS_PROPERTY: Final = "replay_status"
MESSAGE_PROPERTY: Final = "replay_message"
NOISE_PROPERTY: Final = "replay_noise"
BASELINE_PROPERTY: Final = "replay_baseline"


# ---------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--replay-*`` options and ``replay_*`` ini keys."""
    group = parser.getgroup("replay", "telemetry-replay: production traces as tests")
    group.addoption("--replay-update", action="store_true", default=False,
                    help="Accept today's behaviour as the baseline of every replayed trace.")
    group.addoption("--replay-targets", action="store", default=None, metavar="PKG[,PKG]",
                    help="Packages whose code replay may call (overrides replay_targets).")
    group.addoption("--replay-no-noise-check", action="store_true", default=False,
                    help="Do not replay a divergent item a second time to detect noise.")
    for key, (kind, help_text) in INI_KEYS.items():
        parser.addini(key, help_text, type=kind)  # type: ignore[arg-type]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the ``pytest_replay_*`` hookspecs."""
    from pytest_replay import hooks

    pluginmanager.add_hookspecs(hooks)


# ---------------------------------------------------------------- session state


@dataclass(eq=False)  # registered as a plugin: pluggy keeps plugins in sets, so hash by identity
class ReplaySession:
    """Per-session state: resolved config, the engine, verdicts and baselines."""

    config: ReplayConfig
    update: bool
    noise_check: bool
    engine: ReplayEngine | None = None
    verdicts: list[tuple[str, str, str]] = field(default_factory=list)
    noise: list[tuple[str, str]] = field(default_factory=list)
    baselines: dict[str, str] = field(default_factory=dict)
    update_notes: list[str] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    errors: int = 0
    deselected: int = 0
    worker: bool = False
    """An xdist worker: its reports travel to the controller, which keeps the verdicts."""
    trace_folders: tuple[str, ...] | None = None
    """``replay_paths`` resolved, each ending in a separator (found on first use)."""
    resolved_dirs: dict[Path, str] = field(default_factory=dict)
    """Directories of collected files, resolved once each (a session sees each often)."""

    # pytest hooks: this object is registered as a plugin for the session, so
    # verdicts from xdist workers (via report.user_properties) land here too.

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect verdicts and baselines (also from xdist workers).

        Runs first so the baseline payload, which only travels from workers to
        the controller, is taken off the report before JUnit XML sees it.
        """
        if self.worker:
            return  # the payload must reach the controller intact
        if report.when != "call":
            # The teardown report carries the item's properties again (JUnit reads those).
            report.user_properties[:] = [
                item for item in report.user_properties if item[0] != BASELINE_PROPERTY
            ]
            if report.failed:
                self.errors += 1
            return
        properties = dict(report.user_properties)
        status = properties.get(STATUS_PROPERTY)
        if status is None:
            if report.failed:  # unreadable trace or baseline: not a verdict, an error
                self.errors += 1
            return
        self.verdicts.append((report.nodeid, str(status),
                              str(properties.get(MESSAGE_PROPERTY, ""))))
        if properties.get(NOISE_PROPERTY):
            self.noise.append((report.nodeid, str(properties[NOISE_PROPERTY])))
        if BASELINE_PROPERTY in properties:
            self.baselines[report.nodeid] = str(properties[BASELINE_PROPERTY])
            report.user_properties[:] = [
                item for item in report.user_properties if item[0] != BASELINE_PROPERTY
            ]

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Remember that the run is partial (``--replay-update`` then refuses)."""
        self.deselected += len(items)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """With ``--replay-update``, write baselines once everything ran cleanly."""
        if hasattr(session.config, "workerinput"):
            return
        from pytest_replay.replay.update import apply_update, find_orphans

        self.orphans = find_orphans(session.config.rootpath, self.config.paths)
        if self.update:
            self.update_notes = apply_update(session, self)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Say what each replay found: fixed incidents, reproductions, divergences."""
        from pytest_replay.replay.update import summary_lines

        lines = summary_lines(self)
        if lines:
            terminalreporter.write_sep("-", "telemetry-replay")
            for line in lines:
                terminalreporter.write_line(line)

    def collects(self, file_path: Path, rootpath: Path) -> bool:
        """Whether ``file_path`` lies under one of ``replay_paths`` (symlinks resolved).

        The same answer as resolving the file and each folder for every file,
        for a fraction of the system calls: a file that is no symlink resolves
        to its resolved directory plus its name.
        """
        folders = self.trace_folders
        if folders is None:
            folders = self.trace_folders = tuple(
                _with_separator(str((rootpath / relative).resolve()))
                for relative in self.config.paths)
        if file_path.is_symlink():
            where = _with_separator(str(file_path.resolve()))
        else:
            directory = file_path.parent
            resolved = self.resolved_dirs.get(directory)
            if resolved is None:
                resolved = self.resolved_dirs[directory] = _with_separator(
                    str(directory.resolve()))
            where = resolved + file_path.name + os.sep
        return where.startswith(folders)

    def get_engine(self) -> ReplayEngine:
        """The engine, built on first use (so the plugin costs nothing when unused)."""
        if self.engine is None:
            from pytest_replay.replay.engine import ReplayEngine

            self.engine = ReplayEngine(self.config)
        return self.engine


def _read_config(config: pytest.Config) -> ReplayConfig:
    values = {key: config.getini(key) for key in INI_KEYS}
    source = str(config.inipath) if config.inipath else "pytest configuration"
    try:
        resolved = from_values(values, config.rootpath, source)
        cli_targets = config.getoption("replay_targets")
        if cli_targets:
            resolved = resolved.with_targets(t for t in cli_targets.split(",") if t)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return resolved


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the configuration once and keep the session state in the stash."""
    replay_config = _read_config(config)
    state = ReplaySession(
        replay_config,
        update=bool(config.getoption("replay_update")),
        noise_check=not config.getoption("replay_no_noise_check"),
        worker=hasattr(config, "workerinput"),
    )
    config.stash[STASH_KEY] = state
    config.pluginmanager.register(state, "telemetry-replay-session")
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        _add_trace_paths(config, replay_config)


def _add_trace_paths(config: pytest.Config, replay_config: ReplayConfig) -> None:
    """A bare ``pytest`` also collects the trace folders, even with ``testpaths`` set."""
    for relative in replay_config.paths:
        path = config.rootpath / relative
        if path.is_dir() and not any(_is_within(path, Path(arg)) for arg in config.args):
            config.args.append(str(path))


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _with_separator(path: str) -> str:
    """``path`` ending in one separator: a prefix test then means "inside or the same"."""
    return path if path.endswith(os.sep) else path + os.sep


def _session(config: pytest.Config) -> ReplaySession:
    return config.stash[STASH_KEY]


# ---------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TraceFile | None:
    """Collect ``*.jsonl`` files that sit under one of ``replay_paths``."""
    if file_path.suffix != ".jsonl":
        return None
    if not _session(parent.config).collects(file_path, parent.config.rootpath):
        return None
    return TraceFile.from_parent(parent, path=file_path)


class TraceFile(pytest.File):
    """One trace file: one item per recorded root."""

    def collect(self) -> Iterator[pytest.Item]:
        """Model the trace; a broken trace yields failing items, never a collection error."""
        from pytest_replay.model import load_trace

        trace = load_trace(self.path)
        errors = [str(problem) for problem in trace.problems if problem.severity == "error"]
        if not trace.roots:
            reason = errors or [f"{self.path}: no function_entry without a parent: nothing "
                                "to replay"]
            yield BrokenTraceItem.from_parent(self, name="trace", problems=reason)
            return
        for root in trace.roots:
            # The id spelled out: pytest 9 parses "name[param]" ids read back from its
            # cache (--lf) into a param part, which a default item id would not have.
            yield ReplayItem.from_parent(self, name=root.name, nodeid=f"{self.nodeid}::{root.name}",
                                         root=root, problems=errors)


class BrokenTraceItem(pytest.Item):
    """A trace that could not be read at all: it fails on its own, naming the problem."""

    def __init__(self, *, problems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def runtest(self) -> None:
        """Fail with the read problems."""
        raise TraceReadFailure(self.problems)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        """The problems, one per line (no traceback: it is the trace that is wrong)."""
        if isinstance(excinfo.value, TraceReadFailure):
            return "\n".join(excinfo.value.problems)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Point at the trace file."""
        return self.path, 0, f"trace {self.path.name}"


class TraceReadFailure(Exception):
    """A trace's own lines are unusable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ReplayItem(pytest.Item):
    """One recorded request, replayed against the current code."""

    def __init__(self, *, root: Root, problems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.problems = problems
        self.result: ReplayResult | None = None

    def runtest(self) -> None:
        """Replay, store the verdict for reporting, then assert it."""
        if self.problems:
            raise TraceReadFailure(self.problems)
        from pytest_replay import assertion
        from pytest_replay.replay import baseline
        from pytest_replay.replay.update import partial_reason

        state = _session(self.config)
        ref = baseline.BaselineRef(self.path, self.root.name)
        # A run that cannot update (-k, --lf...) judges items as usual instead of
        # passing them while writing nothing.
        updating = state.update and partial_reason(self.session, state) is None
        accepted = None if updating else baseline.load(ref)
        from pytest_replay.replay.http_serve import HttpOverrides

        overrides = HttpOverrides()
        self.config.hook.pytest_replay_http_overrides(item=self, overrides=overrides)
        result = state.get_engine().replay(self.root, baseline=accepted,
                                           check_noise=state.noise_check,
                                           overrides=overrides)
        self.result = result
        self.user_properties.append((STATUS_PROPERTY, result.status))
        self.user_properties.append((MESSAGE_PROPERTY, result.message))
        if result.noise:
            self.user_properties.append((NOISE_PROPERTY, "; ".join(result.noise)))
        self.config.hook.pytest_replay_result(item=self, result=result)
        if updating:
            if result.status in ("reproduced", "not_replayable"):
                self.user_properties.append((BASELINE_PROPERTY, ""))
            else:
                payload = baseline.serialize(ref, result.replayed).decode("utf-8")
                self.user_properties.append((BASELINE_PROPERTY, payload))
                return
        assertion.check(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        """The divergence report, without a Python traceback of our internals."""
        from pytest_replay.replay.baseline import BaselineError

        if isinstance(excinfo.value, TraceReadFailure):
            return "\n".join(excinfo.value.problems)
        if isinstance(excinfo.value, BaselineError):  # names the file and what is wrong
            return str(excinfo.value)
        if isinstance(excinfo.value, AssertionError) and self.result is not None:
            # Rebuilt from the result: pytest truncates assertion explanations
            # below -vv, which would cut the context off the report.
            from pytest_replay.replay.explain import explain

            headline = str(excinfo.value).split("\n", 1)[0]
            lines = explain(self.result, self.config.get_verbosity())
            return "\n".join([headline, *(f"  {line}" for line in lines)])
        return super().repr_failure(excinfo)

    def teardown(self) -> None:
        """Let the verdict go once it is reported.

        Its event lists, kept by every item of a long session, made each full
        garbage collection slower; the reports already hold what is shown. The
        events the replay decoded go back to bytes for the same reason.
        """
        from pytest_replay.format.line_event import forget_decoded

        self.result = None
        forget_decoded(self.root.events)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Point at the root's line in the trace."""
        return self.path, self.root.line - 1, f"{self.path.name}:{self.root.line} {self.name}"


# ---------------------------------------------------------------- reporting


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object,
                              right: object) -> list[str] | None:
    """Explain a failed replay: first divergent event, where, recorded vs now."""
    from pytest_replay.assertion import RecordedBehaviour, ReplayedBehaviour

    if op != "==" or not isinstance(left, ReplayedBehaviour) or not isinstance(
            right, RecordedBehaviour):
        return None
    from pytest_replay.replay.explain import explain

    verbosity = config.get_verbosity()
    return [f"{left!r} == {right!r}", *explain(left.result, verbosity)]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def replay_config(request: pytest.FixtureRequest) -> ReplayConfig:
    """The resolved ``replay_*`` configuration of this session."""
    return _session(request.config).config


@pytest.fixture
def replay_http() -> Any:
    """What-if HTTP answers for ``replay_trace``: ``replay_http.add("POST", url, json=...)``."""
    from pytest_replay.replay.http_serve import HttpOverrides

    return HttpOverrides()


@pytest.fixture
def replay_trace(request: pytest.FixtureRequest, replay_http: Any
                 ) -> Callable[..., list[ReplayResult]]:
    """Replay a trace file from a test: ``replay_trace("traces/x.jsonl")`` -> verdicts."""
    state = _session(request.config)

    def run(path: str | Path) -> list[ReplayResult]:
        from pytest_replay.model import load_trace

        trace = load_trace(Path(request.config.rootpath, path))
        engine = state.get_engine()
        return [engine.replay(root, check_noise=state.noise_check, overrides=replay_http)
                for root in trace.roots]

    return run
