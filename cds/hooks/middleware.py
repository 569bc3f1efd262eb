"""ASGI middleware: a request id on every request and response, an access log line without patient data,
and a request size limit enforced while the body streams in (413 before the app sees an oversized body)."""

from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cds.hooks.access")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class _TooLarge(Exception):
    pass


def _outcome(message: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "too-long", "diagnostics": message}],
        }
    )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 0
        started = False
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._too_large(send_with_id)
            else:
                try:
                    await self.app(scope, limited_receive, send_with_id)
                except _TooLarge:
                    if not started:
                        await self._too_large(send_with_id)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            log.info(
                "request %s %s %s -> %s in %.1f ms",
                request_id,
                scope.get("method"),
                _route_label(scope),
                status,
                elapsed,
            )
            request_id_var.reset(token)

    async def _too_large(self, send: Any) -> None:
        body = _outcome(f"the request body is larger than {self.max_body_bytes} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_label(scope: Scope) -> str:
    """The path: ours hold service ids and rule ids only, never patient data."""
    return str(scope.get("path", ""))[:200]
