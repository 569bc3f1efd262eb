"""Errors the service answers with a status code and a clear message (never a traceback)."""

from __future__ import annotations


class HookError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(HookError):
    status = 400


class UnknownService(HookError):
    status = 404


class PreconditionFailed(HookError):
    """Required data could not be obtained through prefetch or from the FHIR server (CDS Hooks: 412)."""

    status = 412


class PayloadTooLarge(HookError):
    status = 413
