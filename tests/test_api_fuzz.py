"""Schemathesis generates requests from the app's own OpenAPI document: no 5xx, and every
response matches what the document promises (status codes, content types, schemas)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from taskplanner.clock import FrozenClock
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from tests import factories as f
from tests.webapp import TOKEN, make_runtime, seed_two_coordinators

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN])
    seed_two_coordinators(runtime, per_person=3)
    yield runtime
    runtime.close()


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
def test_generated_requests_get_no_server_error_and_match_the_document(
    runtime: Runtime, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error]

    for operation in operations:
        # Known ids part of the time, so requests reach the code behind the 404s.
        known = {"task_id": 2, "job_id": "j1", "stage_id": "s-phone"}
        path_parameters = {k: v for k, v in known.items() if k in operation.path}

        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=mode)
            | operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH, checks=checks)

        try:
            run()
        except Unsatisfiable:
            # No invalid input exists for an operation without parameters or body.
            assert mode is GenerationMode.NEGATIVE, operation.label

    # Afterwards the pipeline and the API still work on the same database.
    assert runtime.pipeline.ingest_now(
        [f.job("j9", name="After fuzzing", stages=(f.stage("s9", "Screen", 0),))]
    ).opened
    with TestClient(create_app(runtime), headers=AUTH) as client:
        titles = [t["title"] for t in client.get("/api/tasks").json()["tasks"]]
    assert "Set up After fuzzing for scheduling" in titles
