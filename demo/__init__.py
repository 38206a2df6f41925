"""A small order/tax service, instrumented with telemetry-replay, for the README's demo."""
