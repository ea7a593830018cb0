"""Schemathesis over every operation of the OpenAPI document, as an admin and as nobody.

Each case is generated from the document, sent to the real app (SQLite, a few recorded runs)
and its response checked against the document: no server error, a declared status, the
declared media type, headers and body schema. The anonymous caller runs against an instance
without ``public_read``, so every read must answer a declared 401 problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from rest_api import create_app
from tests.api_client import RUNS, data_file, run_body
from tests.conftest import instrument_config

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CASES_PER_OPERATION = 40
ANONYMOUS_ANSWERS = (401, 404, 405, 413, 422)


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app on SQLite with GEM runs 1-3 recorded (one with an output); an admin token."""
    root = tmp_path_factory.mktemp("contract")
    settings = Settings(
        data_dir=root / "data",
        archive={"root": root / "archive"},
        instruments={"GEM": instrument_config("noop"), "WISH": instrument_config("noop")},
        log_follow_max_s=2.0,  # a generated ?follow=true on a Queued run must not hold the suite
    )
    (root / "archive").mkdir()
    for run_number in (1, 2, 3):
        data_file(settings, "GEM", run_number)
    app = create_app(settings, relay=False)
    with TestClient(app) as client:
        token = create_token(app.state.api.database, "contract-admin", "admin")
        admin = {"Authorization": f"Bearer {token}"}
        for run_number in (1, 2, 3):
            assert client.post(RUNS, json=run_body(run_number), headers=admin).status_code == 201
        yield app, token


CONTRACT_SETTINGS = hypothesis_settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def check_every_operation(app: Any, headers: dict[str, str]) -> int:
    """Generate cases for each operation, call the app, validate; the number of operations."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @CONTRACT_SETTINGS
        def check(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            if not headers:
                case.headers.pop("Authorization", None)
            response = case.call_and_validate(checks=CHECKS)
            if not headers and case.path != "/health":
                assert response.status_code in ANONYMOUS_ANSWERS, (case.path, response.text)

        check()
    return operations


def test_an_admin_gets_only_declared_answers(contract_app: tuple[Any, str]) -> None:
    app, token = contract_app

    operations = check_every_operation(app, {"Authorization": f"Bearer {token}"})

    assert operations >= 8


def test_an_anonymous_caller_gets_only_declared_answers(contract_app: tuple[Any, str]) -> None:
    app, _token = contract_app

    assert check_every_operation(app, {}) >= 8


def test_the_contract_fixture_keeps_its_data_outside_the_repository(
    contract_app: tuple[Any, str],
) -> None:
    app, _token = contract_app
    data_dir = Path(app.state.api.settings.data_dir)  # type: ignore[attr-defined]
    assert not data_dir.is_relative_to(Path(__file__).resolve().parents[2])
