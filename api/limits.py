"""Limits on what a client may send: body size for every request (413), and how often one
client may file citizens' intake (429 with Retry-After). A public endpoint that sets a
kecamatan's flood level must not be flooded itself."""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Citizens' intake: open to anyone, so limited per client.
INTAKE = frozenset({("POST", "/v1/reports"), ("POST", "/v1/flood/reports")})
_CLIENTS_KEPT = 10_000  # buckets of the most recent clients; older ones start afresh


class TokenBuckets:
    """Per client, ``per_minute`` requests on average and up to ``burst`` at once."""

    def __init__(self, per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.rate, self.burst, self.clock = per_minute / 60.0, float(burst), clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > _CLIENTS_KEPT:
            self._buckets.popitem(last=False)
        return wait


class Limits:
    """Pure ASGI, so a body is counted as it streams in (a chunked one has no length)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, buckets: TokenBuckets) -> None:
        self.app, self.max_body_bytes, self.buckets = app, max_body_bytes, buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"].rstrip("/")) in INTAKE:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.buckets.take(client)
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await _reply(send, 429, "too many reports from this client; try again later",
                             [(b"retry-after", retry.encode())])  # fmt: skip
                return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(send, 413, f"body larger than {self.max_body_bytes} bytes")
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # Read the body first (a chunked one declares no length), at most the limit.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)  # a disconnect: let it say so
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, 413, f"body larger than {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is not None:
            return await then()  # e.g. the disconnect a streaming reply waits for
        return {"type": "http.disconnect"}

    return receive


async def _reply(send: Send, status: int, detail: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
