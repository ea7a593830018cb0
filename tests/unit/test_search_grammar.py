"""The search grammar: text → typed terms, or one SearchSyntaxError naming the token at fault."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoreduce.search import (
    DateRange,
    FieldIs,
    RunRange,
    SearchSyntaxError,
    Term,
    TitleRegex,
    VariableIs,
    Words,
    parse_search,
)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", []),
        ("  vanadium   rod ", [Words("vanadium"), Words("rod")]),
        ('"vanadium rod"', [Words("vanadium rod")]),
        ('"say \\"hi\\" \\\\ back"', [Words('say "hi" \\ back')]),
        ("instrument:WISH", [FieldIs("instrument", "WISH")]),
        ("status:error", [FieldIs("status", "Error")]),
        ("STATUS:Completed", [FieldIs("status", "Completed")]),
        ("experiment:1920123", [FieldIs("experiment", "1920123")]),
        ('title:"vanadium rod"', [FieldIs("title", "vanadium rod")]),
        ("message:boom", [FieldIs("message", "boom")]),
        ("by:detector-0", [FieldIs("by", "detector-0")]),
        ("title:", [FieldIs("title", "")]),
        ("title:a:b", [FieldIs("title", "a:b")]),
        ("run:100..200", [RunRange(100, 200)]),
        ("run:100..", [RunRange(100, None)]),
        ("run:..200", [RunRange(None, 200)]),
        ("run:150", [RunRange(150, 150)]),
        ("date:2026-11-01..2026-11-20", [DateRange(date(2026, 11, 1), date(2026, 11, 20))]),
        ("date:2026-11-01..", [DateRange(date(2026, 11, 1), None)]),
        ("date:..2026-11-20", [DateRange(None, date(2026, 11, 20))]),
        ("date:2026-11-01", [DateRange(date(2026, 11, 1), date(2026, 11, 1))]),
        ("var.sleep_s:0.5", [VariableIs("sleep_s", 0.5)]),
        ("var.banks:5", [VariableIs("banks", 5)]),
        ("var.banks:-5e2", [VariableIs("banks", -500.0)]),
        ("var.smooth:true", [VariableIs("smooth", True)]),
        ("var.smooth:false", [VariableIs("smooth", False)]),
        ("var.fault:none", [VariableIs("fault", "none")]),
        ('var.fault:"5"', [VariableIs("fault", "5")]),
        ('var.fault:"true"', [VariableIs("fault", "true")]),
        ("var.mode:05", [VariableIs("mode", "05")]),
        ("/vanadium.*rod/", [TitleRegex("vanadium.*rod")]),
        ("/a\\/b/", [TitleRegex("a\\/b")]),
        ("/vanadium rod/", [TitleRegex("vanadium rod")]),
        ("/(ab)+c*/", [TitleRegex("(ab)+c*")]),
        (
            'GEM status:Completed title:"vanadium rod" run:1..9',
            [
                Words("GEM"),
                FieldIs("status", "Completed"),
                FieldIs("title", "vanadium rod"),
                RunRange(1, 9),
            ],
        ),
    ],
)
def test_each_form_parses_to_its_term(text: str, terms: list[Term]) -> None:
    assert parse_search(text) == terms


@pytest.mark.parametrize(
    ("text", "token", "says"),
    [
        ("tilte:x", "tilte:x", "unknown field 'tilte' in 'tilte:x' (fields: instrument, status"),
        ("gem :x", ":x", "no field name before ':'"),
        ("run:5..a", "run:5..a", "run range '5..a' is not numbers"),
        ("run:..", "run:..", "names no run"),
        ("run:", "run:", "names no run"),
        ("run:9..1", "run:9..1", "runs backwards"),
        (f"run:{2**63}", f"run:{2**63}", "is past"),
        ("run:١٢", "run:١٢", "is not numbers"),
        ("date:2026-13-01", "date:2026-13-01", "is not an ISO date"),
        ("date:20261101", "date:20261101", "is not an ISO date"),
        ("date:2026-11-02..2026-11-01", "date:2026-11-02..2026-11-01", "runs backwards"),
        ("date:..", "date:..", "names no date"),
        ("status:Finished", "status:Finished", "unknown status 'Finished'"),
        ("var.:1", "var.:1", "is not a name"),
        ("var.a-b:1", "var.a-b:1", "is not a name"),
        (f"var.n:{2**64}", f"var.n:{2**64}", "out of range"),
        ("var.n:1e999", "var.n:1e999", "out of range"),
        ("/(/", "/(/", "invalid regex '/(/'"),
        ("//", "//", "empty regex"),
        ("/(a+)+/", "/(a+)+/", "exponential"),
        ("/((a+)b)*x/", "/((a+)b)*x/", "exponential"),
        ("/abc", "/abc", "unterminated regex"),
        ("/a/b", "/a/b", "unterminated regex"),
        ('title:"abc', 'title:"abc', "unterminated quote"),
        ('x "vanadium rod', '"vanadium rod', "unterminated quote"),
        ('a"b', 'a"b', "stray quote"),
        ('"ab"c', '"ab"c', "text after a closing quote"),
    ],
)
def test_bad_syntax_names_the_token(text: str, token: str, says: str) -> None:
    with pytest.raises(SearchSyntaxError) as raised:
        parse_search(text)

    assert raised.value.token == token
    assert says in str(raised.value)


def test_a_regex_past_the_length_limit_is_refused() -> None:
    with pytest.raises(SearchSyntaxError, match="longer than 200 characters"):
        parse_search("/" + "a" * 201 + "/")


SEARCH_ALPHABET = st.sampled_from(list(' "\\/:.-+*()[]{}?|^$' + "az09AZ_é\t\n"))


@given(st.one_of(st.text(), st.text(SEARCH_ALPHABET, max_size=40)))
@example('title:"a\\')
@example("/\\")
@example("var.x:-0.0e-0")
def test_any_text_parses_or_raises_search_syntax_error_naming_a_part_of_it(text: str) -> None:
    try:
        terms = parse_search(text)
    except SearchSyntaxError as error:
        assert error.token
        assert error.token in text
        assert str(error)
    else:
        assert len(terms) <= len(text.split())
