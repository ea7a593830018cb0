"""Paths built from untrusted values: safe components, and confinement under a root."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoreduce.paths import UnsafePathError, confine, relative_name, safe_component


@pytest.mark.parametrize("value", ["1920123", "RB1920123", "GEM", "v0", "a.b_c+d-e", "0", 44733])
def test_a_plain_value_is_accepted_unchanged(value: object) -> None:
    assert safe_component(value, what="value") == str(value)


REFUSED = ["", ".", "..", ".hidden", "../victim", "a/b", "/etc", "a\0b", "a b", "-1", "é", "a\\b"]


@pytest.mark.parametrize("value", [*REFUSED, "x" * 256])
def test_a_value_that_is_not_one_plain_component_is_refused(value: str) -> None:
    with pytest.raises(UnsafePathError, match=r"^experiment reference .* cannot be used in a path"):
        safe_component(value, what="experiment reference")


def test_the_refusal_names_the_value_and_what_it_is() -> None:
    with pytest.raises(UnsafePathError) as refused:
        safe_component("../../../victim", what="experiment reference")

    assert str(refused.value).startswith(
        "experiment reference '../../../victim' cannot be used in a path"
    )


@given(st.text())
@example("..")
@example(".")
@example("a/b")
@example("a\0")
def test_anything_accepted_is_a_single_component_that_names_no_parent(text: str) -> None:
    try:
        accepted = safe_component(text, what="value")
    except UnsafePathError:
        return
    assert "/" not in accepted and "\0" not in accepted and "\\" not in accepted
    assert accepted not in (".", "..") and not accepted.startswith(".")
    assert Path(accepted).name == accepted and len(Path(accepted).parts) == 1


def test_a_relative_path_is_taken_under_the_root(tmp_path: Path) -> None:
    assert confine(tmp_path, "GEM/unknown/1") == tmp_path.resolve() / "GEM/unknown/1"


def test_the_root_itself_is_confined(tmp_path: Path) -> None:
    assert confine(tmp_path, tmp_path) == tmp_path.resolve()


@pytest.mark.parametrize("path", ["..", "../sibling", "a/../../sibling", "/etc/passwd"])
def test_a_path_leading_out_of_the_root_is_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()

    with pytest.raises(UnsafePathError, match=f"lies outside {root.resolve()}$"):
        confine(root, path, what="output")


def test_a_sibling_sharing_the_roots_name_as_prefix_is_outside(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()

    with pytest.raises(UnsafePathError, match="lies outside"):
        confine(tmp_path / "outputs", tmp_path / "outputs-other" / "x")


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "GEM").symlink_to(elsewhere)

    with pytest.raises(UnsafePathError, match="lies outside"):
        confine(root, root / "GEM" / "unknown" / "1")


def test_a_symlink_that_stays_inside_the_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")

    assert confine(tmp_path, "alias/x") == tmp_path.resolve() / "real" / "x"


def test_a_root_reached_through_a_symlink_still_confines(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")

    assert confine(tmp_path / "link", "x") == tmp_path.resolve() / "real" / "x"


def test_a_symlink_loop_cannot_be_resolved(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")

    with pytest.raises(UnsafePathError, match="cannot be resolved: symlink loop"):
        confine(tmp_path, "a/x")


def test_a_nul_byte_cannot_be_resolved(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match="cannot be resolved"):
        confine(tmp_path, "a\0b")


def test_a_relative_name_is_the_resolved_path_below_the_root(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()

    assert relative_name(tmp_path, tmp_path / "plots" / ".." / "plots" / "i.png") == "plots/i.png"


def test_the_relative_name_of_the_root_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match="is the directory itself"):
        relative_name(tmp_path, tmp_path, what="file")
