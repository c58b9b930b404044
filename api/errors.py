"""Request ids and server errors: a 500 says which request failed, never how. The cause
(a ClickHouse message, a traceback) goes to the log under the same id, where staff can
find it; a client only ever sees the id."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class InternalError(RuntimeError):
    """Our side failed (ClickHouse refused a query, a bug): logged, answered as a bare 500."""


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


async def request_ids(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    # A proxy's X-Request-ID is kept when it looks like one, so logs line up across hops.
    rid = request.headers.get("x-request-id", "")
    if not _CLIENT_ID.match(rid):
        rid = uuid.uuid4().hex
    request.state.request_id = rid
    try:
        response = await call_next(request)
    except Exception:
        log.exception(
            "request failed",
            extra={"request_id": rid, "method": request.method, "path": request.url.path},
        )
        response = JSONResponse({"detail": "internal error", "request_id": rid}, 500)
    response.headers["X-Request-ID"] = rid
    return response
