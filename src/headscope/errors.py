"""Errors raised by headscope.

Every error a user can cause by bad input is a :class:`HeadscopeError` whose message
names the problem and the fix. Subclasses also derive from the matching built-in
exception so ordinary ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class HeadscopeError(Exception):
    """Base class of every error headscope raises on bad input."""


class ModelNotFoundError(HeadscopeError, OSError):
    """A model name or path that cannot be loaded."""


class UnsupportedModelError(HeadscopeError, TypeError):
    """A model headscope cannot capture (no attention layers, unknown family)."""


class InputError(HeadscopeError, ValueError):
    """Bad text or target input: empty, too long, mismatched counts, wrong kind."""


class TooLargeError(InputError):
    """A page or view that would be too large for this input (a long input's ``n x n`` maps); the
    message names the estimated size and how to show less (issue 17)."""


class ShapeError(HeadscopeError, ValueError):
    """An attention array of the wrong shape or with invalid values."""


class GoldFormatError(HeadscopeError, ValueError):
    """A malformed gold alignment file; carries the file path and 1-based line number."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class NotApplicableError(HeadscopeError):
    """A reading that is not defined for this input or model (e.g. alignment of a classifier).

    The report marks a section "not applicable" for this error only; every other error propagates.
    """
