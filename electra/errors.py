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


class TokenizerError(ElectraError):
    pass


class CheckpointError(ElectraError):
    pass
