"""The ``lastruns.txt`` parser: the one valid line, every malformed kind, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from run_detection.lastruns import MAX_RUN_NUMBER, LastRunsError, parse_lastruns


def test_valid_line_returns_run_number() -> None:
    assert parse_lastruns("WISH 00044733 0", "WISH") == 44733


@pytest.mark.parametrize(
    "text",
    ["WISH 00044733 0\n", "  WISH\t00044733   0  \r\n", "WISH 00044733 0\n\n  \n"],
)
def test_surrounding_whitespace_and_trailing_newline_are_fine(text: str) -> None:
    assert parse_lastruns(text, "WISH") == 44733


def test_unpadded_run_number_and_signed_flag_are_accepted() -> None:
    assert parse_lastruns("GEM 7 -1", "GEM") == 7


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty file"),
        ("  \n\t\n", "empty file"),
        ("WISH 00044733", "half-written line: 2 of 3 tokens"),
        ("WISH", "half-written line: 1 of 3 tokens"),
        ("WISH 00044733 0 extra", "wrong token count: 4 tokens"),
        ("WISH 00044733 0\nWISH 00044734 0\n", "more than one line"),
        ("WISH 0004473x 0", "run number '0004473x' is not a number"),
        ("WISH 12.5 0", "run number '12.5' is not a number"),
        ("WISH -00044733 0", "negative run number -00044733"),
        ("WISH \uff14\uff14\uff17\uff13\uff13 0", "is not a number"),
        ("WISH 99999999999999999999 0", "out of range"),
        ("GEM 00044733 0", "instrument name 'GEM' is not 'WISH'"),
        ("wish 00044733 0", "instrument name 'wish' is not 'WISH'"),
        ("WISH 00044733 x", "flag 'x' is not an integer"),
        ("WISH 00044733 0.5", "flag '0.5' is not an integer"),
    ],
)
def test_malformed_line_is_rejected_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(LastRunsError) as raised:
        parse_lastruns(text, "WISH")

    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)


def test_lastruns_error_is_a_value_error() -> None:
    assert issubclass(LastRunsError, ValueError)


def test_long_garbage_is_shortened_in_the_reason() -> None:
    with pytest.raises(LastRunsError) as raised:
        parse_lastruns("WISH 1 2 " + "x" * 500, "WISH")

    assert len(str(raised.value)) < 200


instrument_names = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,31}\Z")
separators = st.text(alphabet=" \t", min_size=1, max_size=4)
outer_whitespace = st.text(alphabet=" \t\r\n", max_size=4)


@given(
    instrument=instrument_names,
    run_number=st.integers(min_value=0, max_value=MAX_RUN_NUMBER),
    padding=st.integers(min_value=0, max_value=12),
    flag=st.integers(min_value=-(10**6), max_value=10**6),
    first=separators,
    second=separators,
    leading=outer_whitespace,
    trailing=outer_whitespace,
)
def test_any_valid_line_round_trips(
    instrument: str,
    run_number: int,
    padding: int,
    flag: int,
    first: str,
    second: str,
    leading: str,
    trailing: str,
) -> None:
    line = f"{leading}{instrument}{first}{run_number:0{padding}d}{second}{flag}{trailing}"

    assert parse_lastruns(line, instrument) == run_number


@given(text=st.text(max_size=80), instrument=instrument_names)
@example(text="WISH 1 0", instrument="WISH")
@example(text="WISH 1e3 0", instrument="WISH")
@example(text="WISH \u0661 0", instrument="WISH")
def test_any_text_either_parses_or_raises_lastruns_error(text: str, instrument: str) -> None:
    try:
        run_number = parse_lastruns(text, instrument)
    except LastRunsError as error:
        assert str(error)
        assert "\n" not in str(error)
    else:
        assert 0 <= run_number <= MAX_RUN_NUMBER


@given(
    tokens=st.lists(
        st.text(alphabet="WISH0123456789-+ x.", min_size=1, max_size=12).filter(
            lambda token: token.strip() == token and " " not in token
        ),
        max_size=5,
    )
)
def test_token_soup_either_parses_or_raises_lastruns_error(tokens: list[str]) -> None:
    try:
        run_number = parse_lastruns(" ".join(tokens), "WISH")
    except LastRunsError:
        return
    assert len(tokens) == 3
    assert tokens[0] == "WISH"
    assert run_number == int(tokens[1])
