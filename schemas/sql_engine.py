"""Run an analyst's SQL on the embedded engine (chdb), read-only and limited.

chdb lets one process open many handles to its one engine; session state (``USE``,
``SET``) belongs to a handle. So every statement gets two fresh handles of its own: one,
read-only from its first command, on which ClickHouse parses the statement (nothing the
analyst wrote ever runs on a writable handle), and one with the limits set and then
``readonly=1`` — after which neither the statement's own SETTINGS clause nor anything else
can lift them or write. The Warehouse calls this on its one ClickHouse thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from schemas.sql_policy import (
    SYNTAX_ERROR,
    Limits,
    SqlRefused,
    check_statement,
    client_settings,
    escape_param,
    output_format,
    parse_ast,
)

_CODE = re.compile(r"Code: (\d+)\.")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_formats: frozenset[str] | None = None


@dataclass(frozen=True)
class SqlRequest:
    sql: str
    database: str | None = None
    default_format: str = "TabSeparated"
    params: dict[str, str] = field(default_factory=dict)  # URL parameters, settings included


@dataclass(frozen=True)
class SqlAnswer:
    body: bytes
    format: str
    read_rows: int
    read_bytes: int
    elapsed_s: float
    timezone: str = "UTC"

    def summary(self) -> dict[str, str]:
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": str(self.read_rows),
            "result_bytes": str(len(self.body)),
            "elapsed_ns": str(int(self.elapsed_s * 1e9)),
        }


class SqlFailed(Exception):
    """ClickHouse refused or failed the statement; its message is the analyst's to read."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _query(conn: Any, sql: str, fmt: str, params: dict[str, str] | None = None) -> Any:
    try:
        return conn.query(sql, fmt, params=params or {})
    except Exception as exc:  # chdb raises plain RuntimeErrors carrying ClickHouse's text
        text = str(exc)
        at = text.find("Code: ")
        message = text[at:] if at >= 0 else text
        match = _CODE.search(message)
        raise SqlFailed(int(match.group(1)) if match else 1002, message.strip()) from exc


def _output_formats(conn: Any) -> frozenset[str]:
    global _formats
    if _formats is None:
        rows = _query(conn, "SELECT name FROM system.formats WHERE is_output", "JSONEachRow")
        _formats = frozenset(json.loads(line)["name"] for line in rows.bytes().splitlines())
    return _formats


def run_sql(chdb_module: Any, engine: str, request: SqlRequest, limits: Limits) -> SqlAnswer:
    """Parse, check and run one statement; raises SqlRefused or SqlFailed."""
    client_settings(request.params, limits)  # refuse a bad request before any work
    params = {
        k.removeprefix("param_"): v for k, v in request.params.items() if k.startswith("param_")
    }
    probe = chdb_module.connect(engine)
    try:
        _query(probe, "SET readonly = 1", "TabSeparated")
        if request.database:
            _query(probe, f"USE {_ident(request.database)}", "TabSeparated")
        here = _query(probe, "SELECT currentDatabase() AS d, timezone() AS tz", "JSONEachRow")
        database, timezone = (json.loads(here.bytes())[k] for k in ("d", "tz"))
        if not request.sql.strip():
            raise SqlRefused(SYNTAX_ERROR, "Empty query")
        one = _query(
            probe,
            "SELECT formatQuery({q:String}) AS q",
            "JSONEachRow",
            {"q": escape_param(request.sql)},
        )
        statement = json.loads(one.bytes())["q"]
        dump = _query(probe, f"EXPLAIN AST {statement}", "TabSeparatedRaw", params)
        tree = parse_ast(dump.bytes().decode())
        settings = client_settings(request.params, limits, check_statement(tree, database))
        fmt = output_format(tree, _output_formats(probe), request.default_format)
    finally:
        probe.close()
    conn = chdb_module.connect(engine)
    try:
        _query(conn, f"USE {_ident(database)}", "TabSeparated")
        for key, value in settings.items():
            if not _SETTING.match(key):
                raise SqlRefused(SYNTAX_ERROR, f"{key!r} is not a setting name")
            _query(conn, f"SET {key} = {_quote(value)}", "TabSeparated")
        _query(conn, "SET readonly = 1", "TabSeparated")
        result = _query(conn, statement, fmt, params)
        return SqlAnswer(
            body=result.bytes() or b"",
            format=fmt,
            read_rows=int(result.rows_read()),
            read_bytes=int(result.bytes_read()),
            elapsed_s=float(result.elapsed()),
            timezone=timezone,
        )
    finally:
        conn.close()
