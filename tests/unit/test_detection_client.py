"""The detector's HTTP client at the wire level (``responses``): body, token, retry policy."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses
import tenacity

from run_detection.client import (
    ApiUnavailableError,
    RunRejectedError,
    RunsClient,
    SubmittedRun,
    default_retry_policy,
    iso_utc,
)

API_URL = "http://api.test"
RUNS_URL = f"{API_URL}/api/v1/runs"
DETECTED_AT = datetime(2026, 11, 24, 6, 40, 0, 123456, tzinfo=UTC)


def bounded_policy(attempts: int) -> tenacity.Retrying:
    return tenacity.Retrying(stop=tenacity.stop_after_attempt(attempts), wait=tenacity.wait_none())


def make_client(attempts: int = 3) -> RunsClient:
    return RunsClient(API_URL + "/", "t0ken", retry_policy=bounded_policy(attempts))


def submit(client: RunsClient) -> SubmittedRun:
    return client.submit_run("GEM", 123, DETECTED_AT)


@responses.activate
def test_posts_the_run_with_bearer_token_and_utc_timestamp() -> None:
    responses.post(RUNS_URL, status=201, json={"run_id": 1})

    submitted = submit(make_client())

    assert submitted.status == 201
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert json.loads(request.body or "") == {
        "instrument": "GEM",
        "run_number": 123,
        "detected_at": "2026-11-24T06:40:00.123Z",
    }


@responses.activate
def test_200_for_an_existing_run_is_accepted() -> None:
    responses.post(RUNS_URL, status=200, json={"run_id": 1})

    assert submit(make_client()).status == 200


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.ConnectionError("connection refused")},
        {"body": requests.ReadTimeout("read timed out")},
        {"status": 503, "json": {"detail": "database unavailable"}},
        {"status": 500},
        {"status": 429, "json": {"detail": "slow down"}},
    ],
)
@responses.activate
def test_transient_failure_is_retried_until_accepted(failure: dict[str, Any]) -> None:
    responses.post(RUNS_URL, **failure)
    responses.post(RUNS_URL, status=201, json={})

    submitted = submit(make_client(attempts=3))

    assert submitted.status == 201
    assert len(responses.calls) == 2


@responses.activate
def test_transient_failures_past_the_policy_raise_api_unavailable() -> None:
    responses.post(RUNS_URL, status=502, json={"detail": "bad gateway"})

    with pytest.raises(ApiUnavailableError, match="HTTP 502: bad gateway"):
        submit(make_client(attempts=3))

    assert len(responses.calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
@responses.activate
def test_other_4xx_is_rejected_at_once_with_its_reason(status: int) -> None:
    responses.post(RUNS_URL, status=status, json={"detail": "token is not a detector's"})

    with pytest.raises(RunRejectedError) as raised:
        submit(make_client(attempts=5))

    assert raised.value.status == status
    assert raised.value.reason == "token is not a detector's"
    assert len(responses.calls) == 1


@responses.activate
def test_reason_falls_back_to_http_reason_without_json_detail() -> None:
    responses.post(RUNS_URL, status=404, body="<html>not here</html>")

    with pytest.raises(RunRejectedError, match="HTTP 404: Not Found"):
        submit(make_client())


@responses.activate
def test_every_request_has_a_timeout() -> None:
    responses.post(RUNS_URL, status=201, json={})
    seen_timeouts: list[object] = []
    session = requests.Session()
    original_send = session.send

    def recording_send(request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        seen_timeouts.append(kwargs.get("timeout"))
        return original_send(request, **kwargs)  # type: ignore[arg-type]

    session.send = recording_send  # type: ignore[method-assign]
    client = RunsClient(API_URL, "t0ken", retry_policy=bounded_policy(1), session=session)

    submit(client)

    assert seen_timeouts
    assert all(timeout is not None for timeout in seen_timeouts)


@responses.activate
def test_token_never_appears_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(RUNS_URL, body=requests.ConnectionError("refused"))
    responses.post(RUNS_URL, status=401, json={"detail": "invalid token"})
    caplog.set_level(logging.DEBUG)

    with pytest.raises(RunRejectedError):
        submit(make_client(attempts=3))

    assert "retrying" in caplog.text
    assert "t0ken" not in caplog.text


def test_default_policy_with_stop_set_gives_up_without_waiting() -> None:
    stop = threading.Event()
    stop.set()
    client = RunsClient("http://127.0.0.1:9", "t0ken", retry_policy=default_retry_policy(stop))

    with responses.RequestsMock() as mocked:
        mocked.post("http://127.0.0.1:9/api/v1/runs", body=requests.ConnectionError("refused"))
        with pytest.raises(ApiUnavailableError):
            submit(client)
        assert len(mocked.calls) == 1


def test_iso_utc_converts_to_utc_with_z() -> None:
    paris_winter = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 24, 7, 40, 0, 5000, tzinfo=paris_winter)

    assert iso_utc(moment) == "2026-11-24T06:40:00.005Z"


def test_iso_utc_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_utc(datetime(2026, 11, 24, 6, 40))
