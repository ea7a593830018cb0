"""Paths built from untrusted values stay inside their roots.

Instrument names, experiment references, run numbers and plugin output names come from data
files and clients. Before any of them reaches the filesystem, each is checked as a single safe
path component (:func:`safe_component`), and the final path is resolved, symlinks followed, and
checked to lie under its root (:func:`confine`): the archive for inputs, the outputs root for
outputs. Both raise :class:`UnsafePathError` with a one-line reason a person can act on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_COMPONENT_CHARS = 255
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class UnsafePathError(ValueError):
    """A value cannot be used in a path, or a path lies outside its root."""


def safe_component(value: object, *, what: str) -> str:
    """``value`` as one path component: letters, digits, ``. _ + -``, not starting with ``.``.

    Raises:
        UnsafePathError: empty, too long, ``.``/``..``, a separator or any other character.
    """
    text = str(value)
    if not text or len(text) > MAX_COMPONENT_CHARS or not _SAFE_COMPONENT.match(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise UnsafePathError(
            f"{what} {shown!r} cannot be used in a path "
            "(allowed: letters, digits, '.', '_', '+', '-', not starting with '.')"
        )
    return text


def confine(root: Path, path: Path | str, *, what: str = "path") -> Path:
    """``path`` resolved (symlinks followed; relative paths taken under ``root``), or raise.

    ``root`` itself is resolved the same way; the result must be ``root`` or lie below it. The
    check is made when called: a path changed afterwards (a directory swapped for a symlink) is
    checked again by calling again.

    Raises:
        UnsafePathError: the path resolves outside ``root``, or cannot be resolved at all
            (a NUL byte, a symlink loop).
    """
    try:
        resolved_root = Path(os.path.realpath(root))
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = resolved_root / candidate
        resolved = Path(os.path.realpath(candidate))
    except (OSError, ValueError) as error:
        raise UnsafePathError(f"{what} {str(path)[:200]!r} cannot be resolved: {error}") from None
    if not resolved.is_relative_to(resolved_root):
        raise UnsafePathError(f"{what} {str(path)[:200]!r} lies outside {resolved_root}")
    for part in (resolved, *resolved.parents):  # realpath leaves a loop's symlink unresolved
        if part == resolved_root:
            break
        if part.is_symlink():
            raise UnsafePathError(
                f"{what} {str(path)[:200]!r} cannot be resolved: symlink loop at {part}"
            )
    return resolved


def relative_name(root: Path, path: Path | str, *, what: str = "path") -> str:
    """``path`` confined under ``root`` (see :func:`confine`) as a POSIX name relative to it.

    The name is of the resolved path: a symlink inside ``root`` gives its target's name.

    Raises:
        UnsafePathError: as :func:`confine`, or the path is ``root`` itself.
    """
    resolved = confine(root, path, what=what)
    name = resolved.relative_to(os.path.realpath(root)).as_posix()
    if name == ".":
        raise UnsafePathError(f"{what} {str(path)[:200]!r} is the directory itself")
    return name
