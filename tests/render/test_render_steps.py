"""Step mode text: one line per event, and the seed's call stack at the error."""

from __future__ import annotations

from pytest_replay.model import Trace
from pytest_replay.render.steps import call_stack_lines, render_step, steps
from pytest_replay.render.style import Style
from tests.render.rendersupport import untimed


def test_steps_of_the_demo_incident(incident: Trace) -> None:
    all_steps = steps(incident.roots[0], Style.plain())
    lines = [untimed(step.line) for step in all_steps]
    assert "[T] ENTER process_order(order_id=12345, user_id=67890)" in lines
    assert "[T] SET tax_rate = 0.08" in lines
    error = next(step for step in all_steps if step.error)
    assert untimed(error.line) == "[T] ERROR ZeroDivisionError: division by zero"
    assert call_stack_lines(error, Style(unicode=True)) == [
        "Call Stack:",
        "  └─ process_order(order_id=12345, user_id=67890)",
        "    └─ calculate_tax(amount=100.0, rate=0.08)",
    ]
    shown = render_step(error, Style.plain())
    assert "Call Stack:" in shown and "at calculate_tax:16" in shown
    first = all_steps[0]
    assert "Call Stack:" not in render_step(first)
    assert "Call Stack:" in render_step(first, stack=True)


def test_steps_outside_any_call() -> None:
    only = steps([{"event_type": "context", "context": {"a": 1}}])
    assert call_stack_lines(only[0]) == ["Call Stack: (outside any recorded call)"]
    assert steps(["junk"])[0].line.endswith("EVENT <not an object>: value='junk'")
