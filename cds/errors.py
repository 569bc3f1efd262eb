"""One root for every error the engine raises on purpose, so callers can catch them without a traceback."""

from __future__ import annotations


class CdsError(Exception):
    """Root of the project's errors; its message is meant for a person."""


class InputError(CdsError):
    """The input is not something we can read at all (not JSON, not FHIR, no resources)."""


class KnowledgeError(CdsError):
    """A rule, catalog or configuration file is invalid. Carries the file it came from."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class EngineError(CdsError):
    """The rules engine failed while evaluating (a rule action raised, or the engine misbehaved)."""
