"""The router's route class, on a small app of its own in a real uvicorn:
bodies bounded whether announced or chunked, an unreachable hub as 503, 422s made readable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from otelstream._server.routing import body_limited_route
from otelstream.hubs import HubUnavailable
from otelstream.testing import UvicornServer

LIMIT = 64


class Body(BaseModel):
    text: str


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    router = APIRouter(route_class=body_limited_route(LIMIT))

    @router.post("/echo")
    async def echo(body: Body) -> dict[str, Any]:
        return {"length": len(body.text)}

    @router.get("/hub-down")
    async def hub_down() -> None:
        raise HubUnavailable("redis://hub:6379 cannot be reached", retry_after=3)

    app = FastAPI()
    app.include_router(router)
    with UvicornServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def test_a_body_within_the_limit_is_read(client: httpx.Client) -> None:
    response = client.post("/echo", json={"text": "x" * 40})
    assert (response.status_code, response.json()) == (200, {"length": 40})


def test_an_announced_body_over_the_limit_is_refused_before_it_is_read(
    client: httpx.Client,
) -> None:
    response = client.post("/echo", json={"text": "x" * LIMIT})
    assert response.status_code == 413
    assert response.json() == {"detail": f"the request body is over {LIMIT} bytes"}


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the route counts what arrives
        yield b'{"text": "'
        for _ in range(8):
            yield b"x" * 32
        yield b'"}'

    response = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_an_unreachable_hub_is_a_503_with_retry_after(client: httpx.Client) -> None:
    response = client.get("/hub-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json()["detail"].startswith("redis://hub:6379 cannot be reached")


def test_a_422_is_made_readable(client: httpx.Client) -> None:
    response = client.post(
        "/echo", content=b'{"text": "hi"}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body"], "json_object")
    assert error["msg"] == "send the body as JSON, with Content-Type: application/json"
