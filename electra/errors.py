"""User-facing errors.

Every problem a user can fix (bad paths, formats, config values, mismatched tokenizers, corrupt
files) raises a subclass of `ElectraError` whose message names the problem and the fix in one
line; the CLI prints it without a traceback."""

from __future__ import annotations


class ElectraError(Exception):
    """A problem the user can fix; the message says what and how."""


class ConfigError(ElectraError):
    pass


class DataError(ElectraError):
    pass


class DivergedError(DataError):
    """Training reached a non-finite loss (a settings grid records it and goes on). A DataError
    still, as it always was for callers that catch it: bad rows can cause it as well as a rate."""


class TokenizerError(ElectraError):
    pass


class CheckpointError(ElectraError):
    pass


def first_line(e: BaseException) -> str:
    """The first line of another library's exception message, to quote inside an ElectraError
    (some messages span lines or embed the user's text, newlines included)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
