"""``--code-version REF``: replay against a git ref of the project, in a temporary worktree.

The traces stay where they are; the code comes from ``REF`` checked out with
``git worktree add --detach``. The replay itself runs in a child process whose
working directory is the worktree, so the targets import from there (the
child checks that they really do), and the worktree is removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final, TextIO

from pytest_replay.cli._common import UsageFailure
from pytest_replay.config import ReplayConfig

EXPECT_ROOT_ENV: Final = "TELEMETRY_REPLAY_EXPECT_ROOT"


def _git(*args: str, cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageFailure(f"--code-version: git failed: {exc}") from None
    if done.returncode != 0:
        raise UsageFailure(f"--code-version: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def child_arguments(argv: list[str]) -> list[str]:
    """The command line without ``--code-version``, trace paths made absolute."""
    out: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
            continue
        if argument == "--code-version":
            skip = True
            continue
        if argument.startswith("--code-version="):
            continue
        out.append(argument)
    return [str(Path(a).resolve()) if not a.startswith("-") and Path(a).exists() else a
            for a in out]


def replay_at_version(options: argparse.Namespace, out: TextIO) -> int:
    """Check ``options.code_version`` out, replay there, clean up; return the child's status."""
    here = Path.cwd()
    top = Path(_git("rev-parse", "--show-toplevel", cwd=here))
    commit = _git("rev-parse", "--verify", f"{options.code_version}^{{commit}}", cwd=top)
    relative = here.resolve().relative_to(top.resolve())
    scratch = Path(tempfile.mkdtemp(prefix="replay-code-version-"))
    worktree = scratch / "worktree"
    _git("worktree", "add", "--detach", str(worktree), commit, cwd=top)
    try:
        out.write(f"Replaying against {options.code_version} ({commit[:12]}) in a temporary "
                  "worktree\n")
        out.flush()
        env = dict(os.environ)
        env[EXPECT_ROOT_ENV] = str(worktree)
        command = [sys.executable, "-m", "pytest_replay.cli.replay_telemetry",
                   *child_arguments(list(options.raw_argv))]
        done = subprocess.run(command, cwd=worktree / relative, env=env, check=False)
        return done.returncode
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=top,
                       capture_output=True, check=False, timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


def check_targets_import_from_expected_root(config: ReplayConfig) -> None:
    """In the child: refuse to replay if the targets resolve outside the worktree."""
    expected = os.environ.get(EXPECT_ROOT_ENV)
    if not expected:
        return
    root = Path(expected).resolve()
    for target in config.targets:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageFailure(f"--code-version: cannot import {target!r} from the worktree: "
                               f"{exc}") from None
        location = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__",
                                                                          [])), None)
        if location is None or not Path(location).resolve().is_relative_to(root):
            raise UsageFailure(
                f"--code-version: {target!r} imports from {location}, not from the worktree "
                f"{root}; it is probably installed (not editable, or with a strict editable "
                "finder). Put it on pytest's pythonpath instead, or uninstall it."
            )
