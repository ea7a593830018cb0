"""The backup and retention settings: durations, defaults, and a refused policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoreduce.settings import ConfigError, Settings, duration_hours, load_settings


@pytest.mark.parametrize(("text", "hours"), [("90d", 2160), ("36h", 36), ("2w", 336), (" 1d ", 24)])
def test_a_duration_is_whole_hours_days_or_weeks(text: str, hours: int) -> None:
    assert duration_hours(text) == hours


@given(st.text(max_size=12))
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    try:
        hours = duration_hours(text)
    except ValueError as error:
        assert "e.g. 90d" in str(error)
    else:
        assert hours >= 1 and text.strip()[-1] in "hdw"


def test_the_defaults_keep_14_days_of_backups_under_the_data_dir_and_clean_after_90_days(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.backup_dir == tmp_path.resolve() / "backups"
    assert settings.backup.keep_days == 14
    assert settings.retention.older_than == "90d"
    assert settings.alerts.backup_max_age_h == 26


def test_a_policy_of_zero_days_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOREDUCE_RETENTION__OLDER_THAN", "0d")
    with pytest.raises(ConfigError, match="positive whole number"):
        load_settings()
