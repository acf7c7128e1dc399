"""Who may watch a run: per-run tokens, so that knowing a trace id is not enough."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


class RunTokens:
    """Signs run ids with a secret; a token opens one run's stream and nothing else.

    Run ids are trace ids, and trace ids travel in `traceparent` headers to every
    service a request touches. With no secret given, one is drawn per process,
    so tokens then work only on the process that issued them: give every worker
    the same `OTELSTREAM_RUN_TOKEN_SECRET`.
    """

    def __init__(self, secret: str | None = None) -> None:
        self._key = (secret or secrets.token_urlsafe(32)).encode()

    def issue(self, run_id: str) -> str:
        digest = hmac.new(self._key, run_id.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def check(self, run_id: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.issue(run_id), token)
