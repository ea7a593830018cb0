"""A job's page ``/runs/JOB/<id>`` through the app: its inputs, who reads it, who cancels it.

The instance is not public: a page is read by a signed-in user, and a job by readers of the
instrument ``JOB`` or by its creator (a user named as the token that submitted it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoreduce.db import Database
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from tests.integration import web_session

HTML = {"Accept": "text/html"}
CONTENT = b"counts of one sample\n"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        GEM="noop", database_url=database_url, public_read=False, jobs={"plugins": ["noop"]}
    )


@pytest.fixture
def data_files() -> None:
    """No archive: a job's data are its uploads."""


def gem_scientist(db: Database, name: str) -> dict[str, str]:
    """Headers with a new token named ``name``: a scientist of GEM only."""
    return {"Authorization": f"Bearer {create_token(db, name, 'scientist', ('GEM',))}"}


def submit_job(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Upload a file and submit a job of it with ``headers``' token."""
    upload = client.post(
        "/api/v1/uploads", files={"file": ("sample <1>.dat", CONTENT)}, headers=headers
    )
    assert upload.status_code == 201, upload.text
    job = client.post(
        "/api/v1/jobs",
        json={"plugin": "noop", "inputs": [upload.json()["id"]], "description": "first look"},
        headers=headers,
    )
    assert job.status_code == 201, job.text
    answer: dict[str, Any] = job.json()
    return answer


def test_the_creator_sees_the_jobs_plugin_inputs_state_and_log(
    app_client: TestClient, db: Database
) -> None:
    job = submit_job(app_client, gem_scientist(db, "ada"))
    web_session.sign_in(app_client, "ada", "scientist", ("GEM",))

    page = app_client.get(f"/runs/JOB/{job['id']}", headers=HTML)

    assert page.status_code == 200, page.text
    assert f"<h1>Job {job['id']}</h1>" in page.text
    assert "<code>noop</code>" in page.text and "submitted by ada" in page.text
    assert "sample &lt;1&gt;.dat" in page.text  # the upload's name, escaped
    assert hashlib.sha256(CONTENT).hexdigest() in page.text
    assert "Queued" in page.text and "first look" in page.text
    assert f'data-log="/api/v1/runs/JOB/{job["id"]}/versions/0/log"' in page.text
    assert "/instruments/JOB" not in page.text and "rerun-form" not in page.text
    assert f'action="/runs/JOB/{job["id"]}/versions/0/cancel"' in page.text
    fragment = app_client.get(f"/runs/JOB/{job['id']}/versions-fragment", headers=HTML)
    assert fragment.status_code == 200 and "Queued" in fragment.text


def test_another_scientist_gets_a_404_and_a_reader_of_job_no_cancel_button(
    app_client: TestClient, db: Database
) -> None:
    job = submit_job(app_client, gem_scientist(db, "ada"))
    url = f"/runs/JOB/{job['id']}"

    web_session.sign_in(app_client, "bob", "scientist", ("GEM",))
    hidden = app_client.get(url, headers=HTML)
    web_session.sign_in(app_client, "cy", "scientist", ("JOB",))
    shown = app_client.get(url, headers=HTML)

    assert hidden.status_code == 404 and f"run JOB {job['id']} not found" in hidden.text
    assert shown.status_code == 200 and "sample &lt;1&gt;.dat" in shown.text
    assert "/cancel" not in shown.text  # only its creator or an admin cancels a job


def test_the_creator_cancels_the_job_from_its_page_and_a_reader_of_job_may_not(
    app_client: TestClient, db: Database
) -> None:
    job = submit_job(app_client, gem_scientist(db, "ada"))
    url = f"/runs/JOB/{job['id']}/versions/0/cancel"

    csrf = web_session.sign_in(app_client, "cy", "scientist", ("JOB",))
    refused = app_client.post(url, data={"csrf_token": csrf, "reason": "x"}, headers=HTML)
    csrf = web_session.sign_in(app_client, "ada", "scientist", ("GEM",))
    done = app_client.post(
        url, data={"csrf_token": csrf, "reason": "wrong file"}, follow_redirects=False
    )

    assert refused.status_code == 403, refused.text
    assert "only its creator or an admin" in refused.text
    assert done.status_code == 303 and done.headers["location"].startswith(f"/runs/JOB/{job['id']}")
    page = app_client.get(f"/runs/JOB/{job['id']}", headers=HTML).text
    assert "Cancelled" in page and "/cancel" not in page


def test_the_creators_token_reads_the_jobs_log_even_when_limited_to_other_instruments(
    app_client: TestClient, db: Database
) -> None:
    ada = gem_scientist(db, "ada")
    job = submit_job(app_client, ada)
    log = f"/api/v1/runs/JOB/{job['id']}/versions/0/log"

    assert app_client.get(log, headers=ada).status_code == 200
    assert app_client.get(log, headers=gem_scientist(db, "bob")).status_code == 404
