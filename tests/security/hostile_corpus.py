"""Hostile traces: each one asks replay to import or call something it must refuse.

Every case says which targets are configured, the events of the trace, and a
pattern the refusal message must match (so the message stays clear, naming
what was asked and why it is refused). The cases are shared by the engine
tests, the pytest-run tests and the sealed-replay tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tests.security.secsupport import LOOKALIKE, NARROW, OUTSIDE, TARGET, entry, exit_

APP: Final = f"{TARGET}.app"


@dataclass(frozen=True)
class Hostile:
    """One hostile trace and how its refusal must read."""

    id: str
    events: tuple[dict[str, Any], ...]
    expect: str
    """A regular expression the not-replayable message must match."""
    targets: tuple[str, ...] = (TARGET,)


def _call(case_id: str, module: str | None, qualname: str | None, expect: str, *,
          targets: tuple[str, ...] = (TARGET,), args: dict[str, Any] | None = None,
          function_name: str | None = None, before: tuple[dict[str, Any], ...] = (),
          fields: dict[str, Any] | None = None) -> Hostile:
    first = entry(module, qualname, args, function_name=function_name, **(fields or {}))
    events = (*before, first, exit_(str(first["function_name"]), 0))
    return Hostile(case_id, events, expect, targets)


def _value(case_id: str, tagged: Any, class_name: str) -> Hostile:
    """A legitimate target call whose argument is a tagged value naming ``class_name``."""
    return _call(case_id, APP, "add", rf"argument 'a' holds a recorded {_re(class_name)} that "
                 r"replay may not rebuild", args={"a": tagged, "b": 1})


def _re(text: str) -> str:
    return "".join("\\" + c if c in ".()[]{}*+?|^$\\" else c for c in text)


_OUTSIDE_MSG = r"module '{m}' is outside replay_targets \({t}\); refusing to import it"


def _outside(case_id: str, module: str, qualname: str, *, targets: tuple[str, ...] = (TARGET,),
             before: tuple[dict[str, Any], ...] = (),
             fields: dict[str, Any] | None = None) -> Hostile:
    expect = _OUTSIDE_MSG.format(m=_re(module), t=_re(", ".join(targets)))
    return _call(case_id, module, qualname, f"^refused: {_re(module)}:{_re(qualname)}: {expect}",
                 targets=targets, before=before, fields=fields)


_CONFIG_IN_TRACE: Final = {"replay_targets": ["os", "subprocess", "builtins"],
                           "replay_allowed_types": ["os:system", "subprocess:Popen"],
                           "config": {"replay_targets": ["os"]}}

TARGET_CASES: Final[tuple[Hostile, ...]] = (
    # names outside the targets: refused before import
    _outside("os.system", "os", "system"),
    _outside("subprocess.Popen", "subprocess", "Popen"),
    _outside("subprocess.run", "subprocess", "run"),
    _outside("builtins.eval", "builtins", "eval"),
    _outside("builtins.exec", "builtins", "exec"),
    _outside("importlib.import_module", "importlib", "import_module"),
    _outside("antigravity", "antigravity", "fly"),
    _outside("this", "this", "main"),
    _outside("own-package-outside-targets", f"{OUTSIDE}.tools", "drop_marker"),
    _outside("lookalike-prefix", f"{LOOKALIKE}.app", "run_payload"),
    _outside("sibling-of-narrow-target", f"{NARROW}.danger", "anything",
             targets=(f"{NARROW}.app",)),
    _outside("parent-of-narrow-target", NARROW, "anything", targets=(f"{NARROW}.app",)),
    _call("builtins.__import__", "builtins", "__import__",
          r"builtins:__import__: dunder attribute paths are never replayed"),
    # aliases reached through an allowed module: judged on the resolved object
    _call("alias-module-attribute", APP, "os.system",
          r"'os' is a module \(os\), not a callable defined in replay_targets"),
    _call("alias-from-subprocess-import-run", APP, "run",
          r"sec_target\.app:run: resolves to a function defined in 'subprocess', outside "
          r"replay_targets"),
    _call("alias-from-os-import-system", APP, "system",
          r"sec_target\.app:system: resolves to a builtin_function_or_method, not a Python "
          r"function defined in replay_targets"),
    _call("alias-class-Popen", APP, "Popen", r"sec_target\.app:Popen: resolves to a type"),
    _call("alias-class-Popen-method", APP, "Popen.communicate",
          r"class Popen is defined in 'subprocess', outside replay_targets"),
    _call("alias-eval-variable", APP, "alias_eval",
          r"alias_eval: resolves to a builtin_function_or_method"),
    _call("alias-import-module-variable", APP, "alias_import_module",
          r"alias_import_module: resolves to a function defined in 'importlib'"),
    _call("alias-subprocess-module", APP, "subprocess.Popen",
          r"'subprocess' is a module \(subprocess\)"),
    # dunder attribute paths
    _call("dunder-__class__.__subclasses__", APP, "Service.__class__.__subclasses__",
          r"dunder attribute paths are never replayed"),
    _call("dunder-__globals__", APP, "add.__globals__",
          r"dunder attribute paths are never replayed"),
    _call("dunder-__builtins__", APP, "__builtins__",
          r"dunder attribute paths are never replayed"),
    _call("dunder-__init__", APP, "Order.__init__", r"dunder attribute paths are never replayed"),
    _call("dunder-module", f"{TARGET}.__main__", "main",
          r"dunder module paths are never replayed"),
    _call("non-function-mro", APP, "Service.mro", r"resolves to a method_descriptor"),
    # qualnames and module names that are not plain dotted identifiers
    _call("qualname-<locals>", APP, "outer.<locals>.inner",
          r"nested functions and lambdas cannot be called directly"),
    _call("qualname-<lambda>", APP, "<lambda>",
          r"nested functions and lambdas cannot be called directly"),
    _call("qualname-slash", APP, "add/../../os",
          r"sec_target\.app:add/\.\./\.\./os: 'add/' is not an attribute name"),
    _call("qualname-space", APP, "add ", r"'add ' is not an attribute name"),
    _call("module-dotdot", f"{TARGET}..app", "add", r"'sec_target\.\.app' is not a module name"),
    _call("module-slash", f"{TARGET}/../os", "system",
          r"'sec_target/\.\./os' is not a module name"),
    _call("module-space", f"{TARGET} .app", "add", r"is not a module name"),
    _call("module-trailing-space", f"{APP} ", "add", r"is not a module name"),
    _call("module-absolute-path", "/etc/passwd", "read", r"'/etc/passwd' is not a module name"),
    _call("module-relative", "..os", "system", r"'\.\.os' is not a module name"),
    _call("module-nul", f"{APP}\x00os", "system", r"is not a module name"),
    # seed-style bare names: looked up inside the targets only
    _call("bare-system", None, None, r"function 'system' is not defined in replay_targets",
          function_name="system"),
    _call("bare-run-imported-into-target", None, None,
          r"function 'run' is not defined in replay_targets", function_name="run"),
    _call("bare-eval", None, None, r"function 'eval' is not defined in replay_targets",
          function_name="eval"),
    _call("bare-__import__", None, None, r"function_name '__import__' is not a plain function",
          function_name="__import__"),
    _call("bare-dotted", None, None, r"function_name 'os\.system' is not a plain function",
          function_name="os.system"),
    # configuration written inside the trace is ignored
    _outside("allowlist-field-on-entry", "os", "system", fields=_CONFIG_IN_TRACE),
    _outside("config-in-context-event", "subprocess", "run", before=(
        {"event_type": "context", "timestamp_ns": 1, "correlation_id": "req_sec",
         "context": _CONFIG_IN_TRACE},)),
    _outside("config-event-type", "builtins", "eval", before=(
        {"event_type": "config", "timestamp_ns": 1, **_CONFIG_IN_TRACE},
        {"event_type": "replay_config", "timestamp_ns": 1, "targets": ["builtins"]})),
)
"""Traces naming a callable replay must not import or call."""

VALUE_CASES: Final[tuple[Hostile, ...]] = (
    # tagged values asking for arbitrary types
    _value("object-os:system", {"$type": "object", "class": "os:system", "attrs": {}},
           "os:system"),
    _value("object-subprocess:Popen", {"$type": "object", "class": "subprocess:Popen",
                                       "attrs": {"args": ["touch", "/tmp/owned"]}},
           "subprocess:Popen"),
    _value("object-builtins:eval", {"$type": "object", "class": "builtins:eval"}, "builtins:eval"),
    _value("dataclass-outside-targets", {"$type": "dataclass", "class": f"{OUTSIDE}.models:Payload",
                                         "fields": {"command": "id"}},
           f"{OUTSIDE}.models:Payload"),
    _value("dataclass-antigravity", {"$type": "dataclass", "class": "antigravity:Fly",
                                     "fields": {}}, "antigravity:Fly"),
    _value("dataclass-alias-through-target", {"$type": "dataclass", "class": f"{APP}:Popen",
                                              "fields": {"args": "id"}}, f"{APP}:Popen"),
    _value("object-dunder-class", {"$type": "object", "class": f"{APP}:Service.__class__"},
           f"{APP}:Service.__class__"),
    _value("object-function-not-class", {"$type": "object", "class": f"{APP}:add"}, f"{APP}:add"),
    _value("object-module-traversal", {"$type": "object", "class": f"{TARGET}/../os:system"},
           f"{TARGET}/../os:system"),
    _value("enum-outside-targets", {"$type": "enum", "class": "signal:Signals", "name": "SIGKILL"},
           "signal:Signals"),
    _value("ref-os:system", {"$type": "ref", "class": "builtins:builtin_function_or_method",
                             "name": "os:system"}, "builtins:builtin_function_or_method"),
    _value("exception-SystemExit", {"$type": "exception", "class": "builtins:SystemExit",
                                    "message": "3"}, "builtins:SystemExit"),
    _value("subclass-os._Environ", {"$type": "subclass", "class": "os:_Environ", "value": {}},
           "os:_Environ"),
    _value("nested-in-list-and-dict", [{"cmd": {"$type": "object", "class": "os:system"}}],
           "os:system"),
    _value("as-dict-key", {"$type": "dict", "items": [[{"$type": "object",
                                                        "class": "subprocess:Popen"}, 1]]},
           "subprocess:Popen"),
    _value("inside-tuple", {"$type": "tuple", "items": [{"$type": "object",
                                                         "class": "builtins:exec"}]},
           "builtins:exec"),
)
"""Traces whose arguments ask the decoder for types replay must not build."""

CASES: Final = TARGET_CASES + VALUE_CASES
"""Every hostile trace of the suite (each is refused: that is the count in the report)."""
