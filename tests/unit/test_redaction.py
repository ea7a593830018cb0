import json
import logging
from pathlib import Path

import pytest

from autoreduce.logs import configure_logging
from autoreduce.redaction import REDACTED, scrub, scrub_value
from autoreduce.run_events import log_run_event


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mysql+pymysql://root:pw-123@db:3306/autoreduce", "pw-123"),
        ("stomp://guest:guest-pw@broker:61613", "guest-pw"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("token ar_" + "x" * 43 + " was used", "x" * 43),
        ("password=s3cret&user=a", "s3cret"),
        ('{"client_secret": "zz-top-secret"}', "zz-top-secret"),
        ("api_key: KEY12345", "KEY12345"),
    ],
)
def test_scrub_masks_each_kind_of_secret(text: str, secret: str) -> None:
    assert secret not in scrub(text)
    assert REDACTED in scrub(text)


def test_scrub_keeps_ordinary_text_and_the_url_user() -> None:
    assert scrub("reducing WISH run 44733") == "reducing WISH run 44733"
    assert scrub("http://root:pw@db/x") == f"http://root:{REDACTED}@db/x"


def test_secret_named_fields_are_masked_in_nested_values() -> None:
    assert scrub_value({"db": {"password": "pw", "host": "h"}}) == {
        "db": {"password": REDACTED, "host": "h"}
    }


def test_no_secret_reaches_the_ecs_log_file(tmp_path: Path) -> None:
    configure_logging("api", tmp_path, fields={"processor": "p-1"})
    log = logging.getLogger("autoreduce.test")
    log.info("broker at %s", "stomp://u:hunter2@b:61613", extra={"token": "hunter2"})
    try:
        raise RuntimeError("cannot connect to mysql://root:hunter2@db/x")
    except RuntimeError:
        log.exception("failed with password=hunter2")

    text = (tmp_path / "api.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert "hunter2" not in text
    assert records[0]["service"]["name"] == "api"
    assert records[0]["autoreduce"]["processor"] == "p-1"
    assert records[0]["host"]["name"] and records[0]["process"]["pid"]
    assert records[1]["error"]["type"] == "RuntimeError"


class _Run:
    instrument, run_number, run_version, id = "WISH", 44733, 1, 812


def test_a_run_event_carries_its_action_identity_and_duration_in_ns(tmp_path: Path) -> None:
    configure_logging("process", tmp_path)
    log_run_event("run.completed", _Run(), duration_ns=2_500_000_000, reduction_ns=2_500_000_000)

    (record,) = [json.loads(x) for x in (tmp_path / "process.jsonl").read_text().splitlines()]
    assert record["event"]["action"] == "run.completed"
    assert record["event"]["duration"] == 2_500_000_000
    assert record["event"]["outcome"] == "success"
    assert record["autoreduce"] == {
        "instrument": "WISH", "run_number": 44733, "run_version": 1, "run_id": 812,
        "reduction_ns": 2_500_000_000,
    }  # fmt: skip


def test_an_unknown_run_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown run event"):
        log_run_event("run.exploded", _Run())
