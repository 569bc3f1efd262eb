"""ASGI middleware: a request id on every request and response, an access log line without patient data,
a request size limit enforced while the body streams in (413 before the app sees an oversized body), and
keep-alive rebalancing across worker processes.

Rebalancing: uvicorn's workers share one listening socket, and a kept-alive connection stays with the worker
that accepted it, however busy that worker becomes (EHRs keep connection pools). Each worker therefore closes the
connection of every Nth response it sends (`Connection: close`, which HTTP/1.1 clients handle by reconnecting).
A busier worker sends more responses, so it sheds more connections, and a reconnecting client is accepted by a
worker that is waiting for work, not by one in the middle of an evaluation."""

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
    def __init__(self, app: ASGIApp, max_body_bytes: int, rebalance_every: int = 0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.rebalance_every = rebalance_every  # 0: never close a keep-alive connection
        self._responses = 0

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
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                if self.rebalance_every:
                    self._responses += 1
                    if self._responses % self.rebalance_every == 0 and scope.get("http_version") == "1.1":
                        headers.append((b"connection", b"close"))
                message["headers"] = headers
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
