"""The live page: a self-contained HTML/JS/CSS view of runs, served by a small router.

No CDN and no build step: the files shipped inside the package, served as
they are, so the page works offline and the wheel is all a user needs.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response

_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
"""Event data can never run as code: no inline script, no foreign origin, no framing."""


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    version: str


def _load(name: str, media_type: str) -> _Asset:
    body = resources.files("otelstream._server.ui").joinpath(name).read_bytes()
    return _Asset(body, media_type, hashlib.sha256(body).hexdigest()[:12])


_SCRIPTS = (
    "page.js",
    "format.js",
    "form.js",
    "usual.js",
    "start.js",
    "run.js",
    "stream.js",
    "apply.js",
    "tree.js",
    "draw.js",
    "header.js",
    "detail.js",
    "runs.js",
    "app.js",
)
"""The page's plain scripts, one concept each, sharing one script scope: index.html loads them
(deferred) in this order, and app.js, last, wires them to the page."""

_ASSETS = {
    **{name: _load(name, "text/javascript; charset=utf-8") for name in _SCRIPTS},
    "app.css": _load("app.css", "text/css; charset=utf-8"),
}
_PAGE = resources.files("otelstream._server.ui").joinpath("index.html").read_text("utf-8")


def render_page(base: str) -> str:
    """The page with its base path (root path + router prefix) and asset versions filled in."""
    page = _PAGE.replace("{{base}}", html.escape(base, quote=True))
    for name, asset in _ASSETS.items():
        page = page.replace("{{version:" + name + "}}", asset.version)
    return page


def ui_router(prefix: str = "") -> APIRouter:
    """`GET {prefix}/ui` and `{prefix}/ui/runs/{run_id}`: the page, next to the API it calls.

    The page calls the API at the path its own `/ui` hangs from, however it
    got there (this prefix, a parent router's, a mount, a proxy's root path),
    so `create_router` can include this router under its own prefix. Assets are
    addressed by a hash of their content: cached for good, new versions seen at once.
    """
    router = APIRouter(prefix=prefix, include_in_schema=False)

    def page(request: Request, suffix: str) -> Response:
        path = request.url.path
        base = path[: -len(suffix)] if path.endswith(suffix) else ""
        return Response(
            render_page(base.rstrip("/")),
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": _CSP,
                "cache-control": "no-cache",
                "x-content-type-options": "nosniff",
                "referrer-policy": "same-origin",
            },
        )

    @router.get("/ui")
    async def index(request: Request) -> Response:
        return page(request, "/ui")

    @router.get("/ui/runs/{run_id}")
    async def run_page(request: Request, run_id: str) -> Response:
        # the script reads the run id from the address
        return page(request, f"/ui/runs/{request.path_params['run_id']}")

    @router.get("/ui/static/{name}")
    async def asset(name: str, v: str | None = None) -> Response:
        found = _ASSETS.get(name)
        if found is None:
            raise HTTPException(404, f"no asset {name!r}")
        cache = "public, max-age=31536000, immutable" if v == found.version else "no-cache"
        return Response(
            found.body,
            media_type=found.media_type,
            headers={"cache-control": cache, "x-content-type-options": "nosniff"},
        )

    return router


__all__ = ["render_page", "ui_router"]
