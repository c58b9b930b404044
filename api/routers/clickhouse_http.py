"""ClickHouse's HTTP interface at /clickhouse, for analysts on the embedded engine.

While `sitroom up` holds chdb no other process can open it, so analysts' tools
(clickhouse-connect, curl, Grafana's ClickHouse data source) reach it here as they would a
ClickHouse server at http://host:8000/clickhouse: the query in the URL (``query=``) or the
body, ``default_format``, ``database``, ``param_*`` and settings as URL parameters, results
in the format asked for with ClickHouse's response headers and errors. Behind the analyst
role; the token may come as a bearer token, as the password of basic auth or
``X-ClickHouse-Key``, or as ``password=``. What may run is schemas/sql_policy.py's call.

``client_protocol_version`` is honoured as a server honours it: Native results are written
for that protocol revision (schemas/native_revision.py). clickhouse-go, and with it Grafana's
ClickHouse data source over HTTP, always sends it and cannot read Native without it.
``compress=1`` (ClickHouse's own block compression) is refused rather than ignored: a client
that asks for it cannot read an uncompressed reply. HTTP compression is not applied, as on a
server without ``enable_http_compression``; clients then read the body as it is.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import uuid
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from schemas.access import AccessBook, Role
from schemas.native_revision import NativeUnsupported, for_revision
from schemas.sql_engine import SqlFailed, SqlRequest
from schemas.sql_policy import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    STATUS_OF_CODE,
    SYNTAX_ERROR,
    Limits,
    SqlRefused,
    content_type,
)
from schemas.warehouse import Warehouse, WarehouseError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/clickhouse", tags=["analysts' SQL"], include_in_schema=False)
SERVER_NAME = "sitroom"
NOT_IMPLEMENTED = 48
CANNOT_PARSE_NUMBER = 72
# Type names in binary: schemas/native_revision.py reads them as text.
BINARY_TYPES = "output_format_native_encode_types_in_binary_format"


def _error(code: int, message: str, status: int | None = None) -> Response:
    return Response(
        f"Code: {code}. DB::Exception: {message}. (version sitroom)\n",
        status_code=status or STATUS_OF_CODE.get(code, 500),
        media_type="text/plain; charset=UTF-8",
        headers={
            "X-ClickHouse-Exception-Code": str(code),
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
        },
    )


def presented_secret(request: Request) -> str | None:
    """The token as any ClickHouse client sends a credential."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            _user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return request.headers.get("x-clickhouse-key") or request.query_params.get("password") or None


def _refused_caller(request: Request) -> Response | None:
    book: AccessBook | None = request.app.state.access
    if book is None:
        return None
    secret = presented_secret(request)
    token = book.find(secret) if secret else None
    if token is None:
        return _error(
            AUTHENTICATION_FAILED,
            "a valid sitroom token with the analyst role is needed (as the password, "
            "X-ClickHouse-Key or a bearer token)",
        )
    if Role.ANALYST not in token.roles:
        return _error(ACCESS_DENIED, f"{token.name} has no analyst role")
    return None


async def _statement(request: Request) -> tuple[str, dict[str, str]] | Response:
    params = dict(request.query_params)
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get("content-encoding", "identity") != "identity" or params.get(
        "decompress"
    ) in ("1", "true"):
        return _error(SYNTAX_ERROR, "compressed request bodies are not accepted here")
    if params.get("compress") in ("1", "true"):
        return _error(
            NOT_IMPLEMENTED,
            "compress=1 (ClickHouse's compressed blocks) is not supported here: "
            "use no compression or HTTP compression (gzip) in the client",
            501,
        )
    if kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        body = b""
    elif kind == "multipart/form-data":
        return _error(SYNTAX_ERROR, "send the query in the body or the URL, not as form data")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(SYNTAX_ERROR, "the query is not UTF-8")
    # As ClickHouse does: the URL's query first, the body after it.
    sql = "\n".join(part for part in (params.pop("query", ""), text) if part)
    return sql, params


@router.get("/ping")
async def ping() -> Response:
    return Response("Ok.\n", media_type="text/plain; charset=UTF-8")


@router.api_route("", methods=["GET", "POST"])
@router.api_route("/", methods=["GET", "POST"])
async def query(request: Request) -> Response:
    refused = _refused_caller(request)
    if refused is not None:
        return refused
    parsed = await _statement(request)
    if isinstance(parsed, Response):
        return parsed
    sql, params = parsed
    revision = params.get("client_protocol_version", "0").strip() or "0"
    if not (revision.isascii() and revision.isdigit()):
        return _error(
            CANNOT_PARSE_NUMBER, f"cannot parse client_protocol_version {revision!r}", 400
        )
    if not sql.strip() and request.method == "GET":
        return Response("Ok.\n", media_type="text/plain; charset=UTF-8")
    warehouse: Warehouse = request.app.state.warehouse
    settings = request.app.state.settings
    limits = Limits(settings.sql_max_rows, settings.sql_max_seconds, settings.sql_max_memory_bytes)
    ask = SqlRequest(
        sql=sql,
        database=params.get("database") or None,
        default_format=params.get("default_format") or "TabSeparated",
        params=params,
    )
    query_id = params.get("query_id") or str(uuid.uuid4())
    if not warehouse.embedded:
        return _error(
            NOT_IMPLEMENTED,
            "this API uses a ClickHouse server: connect to that server with a read-only user",
            501,
        )
    try:
        answer = await warehouse.analyst_sql(ask, limits)
    except SqlRefused as exc:
        log.info("analyst sql refused", extra={"code": exc.code, "reason": str(exc)})
        return _error(exc.code, str(exc))
    except SqlFailed as exc:
        # The analyst's own statement failed: ClickHouse's words are theirs to read.
        return _error(exc.code, str(exc).removeprefix(f"Code: {exc.code}. DB::Exception: "))
    except WarehouseError as exc:
        log.warning("analyst sql failed", extra={"error": str(exc)})
        return _error(1002, "the warehouse failed; see the API's log", 500)
    if answer.format == "Native" and int(revision):
        if params.get(BINARY_TYPES, "0").strip().lower() not in ("0", "false", ""):
            return _error(NOT_IMPLEMENTED, f"{BINARY_TYPES} with client_protocol_version", 501)
        try:
            body = await asyncio.to_thread(for_revision, answer.body, int(revision))
        except NativeUnsupported as exc:
            return _error(NOT_IMPLEMENTED, str(exc), 501)
        answer = dataclasses.replace(answer, body=body)
    return Response(
        answer.body,
        media_type=content_type(answer.format),
        headers={
            "X-ClickHouse-Format": answer.format,
            "X-ClickHouse-Timezone": answer.timezone,
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Summary": json.dumps(answer.summary()),
        },
    )
