"""Errors a user can act on. Each names the file, line, field or id at fault."""

from __future__ import annotations


class LLMRecError(Exception):
    """Base class for every error llmrec raises on purpose."""


class ConfigError(LLMRecError):
    """A config key is unknown, mistyped or out of range."""


class DataError(LLMRecError):
    """An input file is malformed. The message names file, line and column where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None):
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f" line {line}"
            where += ": " if column is None else f": column '{column}' "
        super().__init__(where + message)
        self.path, self.line, self.column = path, line, column


class ArtifactError(LLMRecError):
    """A file llmrec wrote (checkpoint, run folder) is missing, truncated, corrupt or of an old format."""
