"""schemathesis against the live API's OpenAPI schema: every operation, with data the
schema allows and data it does not, each answer checked against the schema (status,
content type, body) and never a 5xx. Shared by the short seeded run of the test suite
and the long one of ``bench/fuzz_api.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzReport:
    """What a run did: requests by operation, and the failures (operation, error)."""

    requests: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    budget_hit: bool = False


def fuzz(
    base_url: str,
    key: str,
    *,
    examples: int,
    seed: int,
    budget_s: float,
    max_body_items: int = 20,
) -> FuzzReport:
    """Run every operation of the schema at ``base_url`` (``/api/v1/openapi.json``)
    with ``examples`` positive and ``examples`` negative cases each, seeded, stopping
    new operations once ``budget_s`` seconds have passed. Arrays in generated bodies are
    capped at ``max_body_items`` items (a 10,000-number check is a benchmark, not a
    fuzz case)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    components = schema.raw_schema.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    for methods in schema.raw_schema["paths"].values():
        for operation in methods.values():
            # requests only: the answers are checked against the schema as it is
            _cap_arrays(operation.get("requestBody"), max_body_items, components, seen)
    report = FuzzReport()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() - started > budget_s:
                report.budget_hit = True
                break
            strategy = operation.as_strategy(generation_mode=mode)

            run = _runner(label, strategy, report, base_url, headers, examples, seed)
            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # no invalid request exists (an operation without parameters)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                report.failures.append((f"{label} ({mode.value})", str(exc)[:2000]))
    report.seconds = time.monotonic() - started
    return report


def _runner(
    label: str,
    strategy: Any,
    report: FuzzReport,
    base_url: str,
    headers: dict[str, str],
    examples: int,
    seed: int,
) -> Callable[[], None]:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.seed(seed)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        report.requests[label] = report.requests.get(label, 0) + 1
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    return run  # type: ignore[no-any-return]


def _cap_arrays(node: object, limit: int, components: dict[str, Any], seen: set[str]) -> None:
    """Give every array of a request schema (and of the components it refers to, which
    only requests use) a ``maxItems`` of at most ``limit``."""
    if isinstance(node, dict):
        if node.get("type") == "array":
            node["maxItems"] = min(int(node.get("maxItems", limit)), limit)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen and name in components:
                seen.add(name)
                _cap_arrays(components[name], limit, components, seen)
        for value in node.values():
            _cap_arrays(value, limit, components, seen)
    elif isinstance(node, list):
        for value in node:
            _cap_arrays(value, limit, components, seen)
