"""The request middleware on a real server on loopback: keep-alive rebalancing across workers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from cds.hooks.middleware import RequestContextMiddleware
from tests.hooks.servers import thread_server


def _echo_app(rebalance_every: int) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    async def who(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}  # the client's port names its TCP connection

    app.add_middleware(RequestContextMiddleware, max_body_bytes=1000, rebalance_every=rebalance_every)
    return app


@pytest.mark.parametrize(("every", "connections"), [(3, 3), (0, 1)])
def test_every_nth_response_closes_its_connection(every: int, connections: int) -> None:
    with thread_server(_echo_app(every)) as base, httpx.Client(timeout=10.0) as client:
        answers = [client.get(base + "/who") for _ in range(9)]
    assert all(a.status_code == 200 for a in answers)
    closing = [i + 1 for i, a in enumerate(answers) if a.headers.get("connection") == "close"]
    assert closing == ([3, 6, 9] if every else [])
    ports = [a.json()["port"] for a in answers]
    assert len(set(ports)) == connections
    if every:  # the client reconnected after each close: three requests per connection
        assert ports[0] == ports[2] != ports[3] == ports[5] != ports[6] == ports[8]


def test_the_service_rebalances_by_default(service: tuple[str, Path], client: httpx.Client) -> None:
    base, _ = service
    answers = [client.get(base + "/healthz") for _ in range(16)]
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.headers.get("connection") == "close" for a in answers) == 2  # every 8th response of the worker
