"""The ASGI app: discovery, the hook services, feedback, rule documentation. Build it with `create_app()`;
uvicorn's workers call it as a factory (`cds.hooks.app:create_app`), so each worker process has its own
Evaluator, HTTP client and database pool."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from starlette.background import BackgroundTask

from cds import heap
from cds.engine.reload import RulesetManager
from cds.hooks.dev_fhir import create_dev_fhir_app
from cds.hooks.discovery import SERVICES_BY_ID, discovery_document
from cds.hooks.errors import BadRequest, HookError, UnknownService
from cds.hooks.feedback import parse_feedback
from cds.hooks.feedback_store import FeedbackStore, IssuedCard
from cds.hooks.fhir_client import FhirClient
from cds.hooks.middleware import RequestContextMiddleware, request_id_var
from cds.hooks.prefetch import PrefetchResolver
from cds.hooks.requests import parse_hook_request
from cds.hooks.rule_docs import RuleCatalog, rule_catalog
from cds.hooks.security import Authenticator, Caller, MemoryJtiCache, Unauthorized
from cds.hooks.service import HookService
from cds.hooks.settings import HookSettings

log = logging.getLogger("cds.hooks")
JSON = "application/json"
ISSUED_MEMORY = 100_000
ISSUED_BATCH = 200  # issued cards are written in batches of this size, or every issued_cards_flush_seconds


def _json(data: Any, status: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON, background=background)


def operation_outcome(status: int, message: str) -> Response:
    code = {400: "invalid", 404: "not-found", 412: "incomplete", 413: "too-long"}.get(status, "exception")
    return _json(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]},
        status,
    )


def unauthorized() -> Response:
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


@dataclass
class Runtime:
    """What one worker process holds for its lifetime."""

    settings: HookSettings
    catalog: RuleCatalog
    store: FeedbackStore
    http: httpx.AsyncClient
    service: HookService
    authenticator: Authenticator
    discovery: bytes
    issued_seen: set[str] = field(default_factory=set)
    issued_pending: list[tuple[str, IssuedCard]] = field(default_factory=list)
    issued_flushed: float = 0.0
    issued_flush_scheduled: bool = False
    issued_lock: threading.Lock = field(default_factory=threading.Lock)

    async def caller(self, request: Request) -> Caller | None:
        """None in development mode; raises Unauthorized when the JWT does not pass."""
        if self.settings.dev_mode:
            return None
        audience = self.settings.public_base_url + request.url.path
        return await self.authenticator.authenticate(request.headers.get("authorization"), audience)

    def record_issued(self, service_id: str, cards: tuple[IssuedCard, ...]) -> bool:
        """Remember the cards we showed (uuid -> rule) for the feedback report, in memory (microseconds: called
        on the event loop). True when a batch is due: the caller then runs `flush_issued` off the loop."""
        with self.issued_lock:
            for card in cards:
                if card.card_uuid not in self.issued_seen:
                    self.issued_seen.add(card.card_uuid)
                    self.issued_pending.append((service_id, card))
            due = (
                bool(self.issued_pending)
                and not self.issued_flush_scheduled
                and (
                    len(self.issued_pending) >= ISSUED_BATCH
                    or time.monotonic() - self.issued_flushed >= self.settings.issued_cards_flush_seconds
                )
            )
            self.issued_flush_scheduled |= due
            return due

    def flush_issued(self) -> None:
        with self.issued_lock:
            pending, self.issued_pending = self.issued_pending, []
            self.issued_flushed = time.monotonic()
            self.issued_flush_scheduled = False
            if len(self.issued_seen) > ISSUED_MEMORY:
                self.issued_seen.clear()
        by_service: dict[str, list[IssuedCard]] = {}
        for service_id, card in pending:
            by_service.setdefault(service_id, []).append(card)
        for service_id, batch in by_service.items():
            try:
                self.store.add_issued_cards(service_id, batch)
            except Exception as exc:  # bookkeeping must never fail a hook call
                log.warning("could not record %d issued cards (%s)", len(batch), type(exc).__name__)


def _build_runtime(settings: HookSettings) -> Runtime:
    catalog = rule_catalog()
    store = FeedbackStore(settings.feedback_db_url)
    store.create_schema()
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.fhir_timeout_seconds), follow_redirects=False, trust_env=False
    )
    memory = MemoryJtiCache()

    async def remember_jti(key: str, expires_at: datetime) -> bool:
        if settings.jti_cache == "memory":
            return await memory.remember(key, expires_at)
        return await anyio.to_thread.run_sync(store.remember_jti, key, expires_at)

    rules = RulesetManager(on_error=lambda e: log.error("rules reload rejected, previous rules stay in service: %s", e))
    if settings.rules_reload_seconds > 0:
        rules.start(interval=settings.rules_reload_seconds)  # re-validated and swapped atomically on change
    service = HookService(
        rules,
        PrefetchResolver(FhirClient(http, settings.fhir_max_pages), settings.fhir_timeout_seconds * 2),
        settings,
        catalog,
    )
    return Runtime(
        settings=settings,
        catalog=catalog,
        store=store,
        http=http,
        service=service,
        authenticator=Authenticator(settings, http, remember_jti),
        discovery=orjson.dumps(discovery_document(catalog)),
    )


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("the request body is empty (expected JSON)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})") from None


def create_app(settings: HookSettings | None = None) -> FastAPI:
    settings = settings or HookSettings()
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("cds.hooks").setLevel(settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry query strings (patient ids)
    holder: dict[str, Runtime] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime = await anyio.to_thread.run_sync(_build_runtime, settings)
        holder["runtime"] = runtime
        heap.settle()  # the rules and knowledge live as long as the worker: out of every collection (cds/heap.py)
        if settings.dev_mode:
            log.warning("!" * 78)
            log.warning("DEVELOPMENT MODE: client authentication is OFF. Never expose this to a network.")
            log.warning("!" * 78)
        elif not settings.issuers:
            log.warning("no trusted issuers are configured: every call will be answered 401")
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(runtime.flush_issued)
            await runtime.http.aclose()
            runtime.store.close()

    app = FastAPI(
        title="TRD decision support - CDS Hooks 2.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def rt() -> Runtime:
        return holder["runtime"]

    async def guarded(request: Request, handler: Callable[[Caller | None], Awaitable[Response]]) -> Response:
        try:
            try:
                caller = await rt().caller(request)
            except Unauthorized as exc:
                log.info("request %s: authentication failed: %s", request_id_var.get(), exc)
                return unauthorized()
            return await handler(caller)
        except HookError as exc:
            return operation_outcome(exc.status, exc.message)
        except Exception as exc:  # never a traceback to the caller, never a dead worker
            frames = "; ".join(f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__))
            log.error("request %s: internal error %s at %s", request_id_var.get(), type(exc).__name__, frames)
            return operation_outcome(500, f"internal error (request id {request_id_var.get()})")

    @app.get("/cds-services")
    async def discovery(request: Request) -> Response:
        async def handle(_: Caller | None) -> Response:
            return Response(rt().discovery, media_type=JSON)

        return await guarded(request, handle)

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> Response:
        async def handle(_: Caller | None) -> Response:
            spec = SERVICES_BY_ID.get(service_id)
            if spec is None:
                raise UnknownService(f"no CDS service {service_id!r}")
            hook_request = parse_hook_request(spec, await _body(request))
            answer = await rt().service.answer(spec, hook_request)
            flush = None  # the database write (a batch) happens after the response is sent, in a thread
            if rt().record_issued(spec.id, answer.issued):
                flush = BackgroundTask(anyio.to_thread.run_sync, rt().flush_issued)
            return _json(answer.response, background=flush)

        return await guarded(request, handle)

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        async def handle(caller: Caller | None) -> Response:
            if service_id not in SERVICES_BY_ID:
                raise UnknownService(f"no CDS service {service_id!r}")
            items = parse_feedback(await _body(request))
            stored, duplicates = await anyio.to_thread.run_sync(
                rt().store.add_feedback,
                service_id,
                items,
                caller.iss if caller else None,
                caller.tenant if caller else None,
            )
            return _json({"stored": stored, "duplicates": duplicates})

        return await guarded(request, handle)

    @app.get("/rules/{rule_id}")
    async def rule_documentation(rule_id: str) -> Response:
        doc = rt().catalog.rules.get(rule_id)
        if doc is None:
            return operation_outcome(404, f"no rule {rule_id!r}")
        return _json(doc.as_json())

    @app.get("/healthz")
    async def health() -> Response:
        return _json({"status": "ok", "time": datetime.now(UTC).isoformat(timespec="seconds")})

    if settings.dev_examples is not None:
        if not settings.dev_mode:
            raise ValueError("dev_examples is only allowed in development mode (auth = 'disabled-dev')")
        app.mount("/dev-fhir", create_dev_fhir_app(settings.dev_examples))

    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        rebalance_every=settings.keepalive_rebalance_every,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=["X-Request-Id"],
        max_age=600,
    )
    return app
