"""What an analyst's SQL may do through the API's ClickHouse HTTP entry point (pure logic).

ClickHouse itself parses the statement (``formatQuery`` refuses multi-statements; ``EXPLAIN
AST`` gives the tree); this module reads that tree and decides. Read-only is enforced by the
engine too (``readonly=1`` on the handle the statement runs on); what the engine would allow
but the room must not is refused here: personal-data tables, table functions that reach
other tables or files, writing the result to a file, and settings that would lift the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.ddl_departments import CITIZEN_REPORTS, REPORT_CONTACTS, REPORT_EVENTS
from schemas.ddl_sensors import CCTV_EVENTS, FLOOD_REPORTS

# The one list of tables whose rows are personal data (a citizen's words, exact point,
# photo and contact; staff names on report events; licence plates). Staff read them through
# the API's own endpoints with the `staff` role; SQL never reads them.
PERSONAL_TABLES: frozenset[str] = frozenset(
    {CITIZEN_REPORTS, REPORT_EVENTS, REPORT_CONTACTS, FLOOD_REPORTS, CCTV_EVENTS}
)
# system tables that describe the schema and the engine, never data or other queries' text.
SYSTEM_TABLES: frozenset[str] = frozenset(
    {
        "one",
        "databases",
        "tables",
        "columns",
        "settings",
        "functions",
        "table_functions",
        "formats",
        "data_type_families",
        "time_zones",
        "build_options",
        "contributors",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "parts",
        "merges",
    }
)
SCHEMA_DATABASES: frozenset[str] = frozenset({"information_schema", "INFORMATION_SCHEMA"})
CATALOG_DATABASES: frozenset[str] = SCHEMA_DATABASES | {"system"}
# Table functions that make rows from nothing (or from a subquery that is checked itself).
TABLE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generateSeries",
        "generate_series",
        "values",
        "view",
        "generateRandom",
        "null",
    }
)
# Scalar functions that read files of the API's machine or tables named in a string.
REFUSED_FUNCTIONS: frozenset[str] = frozenset({"file", "joinGet", "joinGetOrNull"})
# `x IN t` reads table t when its right side is a bare name.
IN_FUNCTIONS: frozenset[str] = frozenset(
    {
        "in",
        "notIn",
        "globalIn",
        "globalNotIn",
        "nullIn",
        "notNullIn",
        "globalNullIn",
        "globalNotNullIn",
    }
)
STATEMENT_PREFIXES = ("Select", "Show", "Describe", "Exists")

# Request parameters of ClickHouse's HTTP interface that are not settings, and HTTP-only
# settings that mean nothing to an embedded engine: accepted and left out.
TRANSPORT_PARAMS: frozenset[str] = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "close_session",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "http_zlib_compression_level",
        "http_native_compression_disable_checksumming_on_decompress",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "add_http_cors_header",
    }
)
# Settings a client may change: how results look, never what may be read or how much.
ALLOWED_SETTINGS: frozenset[str] = frozenset(
    {
        "date_time_output_format",
        "date_time_input_format",
        "session_timezone",
        "join_use_nulls",
        "max_block_size",
        "extremes",
        "max_threads",
        "log_comment",
        "cast_string_to_dynamic_use_inference",
        "date_time_overflow_behavior",
        "aggregate_functions_null_for_empty",
        "transform_null_in",
        "enable_analyzer",
        "allow_experimental_analyzer",
        "final",
        "use_query_cache",
        # Grafana's data source sends its row limit as this setting: it only cuts a result.
        "limit",
    }
)
ALLOWED_SETTING_PREFIXES = ("output_format_", "format_")

# ClickHouse error codes clients understand, with the HTTP status a server would answer.
SYNTAX_ERROR = 62
UNKNOWN_TABLE = 60
READONLY = 164
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
TOO_MANY_ROWS = 396
TIMEOUT_EXCEEDED = 159
STATUS_OF_CODE = {
    SYNTAX_ERROR: 400,
    457: 400,
    47: 404,
    UNKNOWN_TABLE: 404,
    81: 404,
    46: 404,
    READONLY: 403,
    ACCESS_DENIED: 403,
    AUTHENTICATION_FAILED: 401,
}


class SqlRefused(Exception):
    """A statement or request the entry point will not run, in ClickHouse's terms."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def status(self) -> int:
        return STATUS_OF_CODE.get(self.code, 500)


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_seconds: float
    max_memory_bytes: int

    def settings(self, catalog: bool = False) -> dict[str, str]:
        return {
            "max_result_rows": "0" if catalog else str(self.max_rows),
            "result_overflow_mode": "throw",
            "max_execution_time": _number(self.max_seconds),
            "timeout_overflow_mode": "throw",
            "max_memory_usage": str(self.max_memory_bytes),
        }


@dataclass
class Node:
    kind: str
    detail: str
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    @property
    def name(self) -> str:
        """The first word after the node's kind: a function's or an identifier's name."""
        words = self.detail.split()
        return words[0] if words else ""

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def parse_ast(dump: str) -> Node:
    """The tree of ``EXPLAIN AST`` output: one node a line, indented one space a level."""
    lines = [line for line in dump.splitlines() if line.strip()]
    if not lines:
        raise SqlRefused(SYNTAX_ERROR, "empty query")
    stack: list[tuple[int, Node]] = []
    root: Node | None = None
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        kind, _, detail = line.strip().partition(" ")
        node = Node(kind, detail.split(" (children", 1)[0].strip())
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            node.parent = stack[-1][1]
            node.parent.children.append(node)
        elif root is None:
            root = node
        stack.append((depth, node))
    assert root is not None
    return root


def _check_table(name: str, database: str) -> str:
    db, _, table = name.rpartition(".")
    db = db.strip('`"') or database
    table = table.strip('`"')
    if db == "system":
        if table not in SYSTEM_TABLES:
            raise SqlRefused(ACCESS_DENIED, f"system.{table} is not open to analysts' SQL")
    elif db in SCHEMA_DATABASES:
        return db
    elif db != database:
        raise SqlRefused(ACCESS_DENIED, f"only the database {database} is open to analysts' SQL")
    elif table in PERSONAL_TABLES:
        raise SqlRefused(
            ACCESS_DENIED,
            f"{table} holds personal data and is not open to analysts' SQL "
            "(staff read it through the API with the staff role)",
        )
    return db


def check_statement(root: Node, database: str) -> bool:
    """Refuse what the room does not let analysts run. True when the statement reads only
    the catalog (system and information_schema tables: schema, never data), which a
    client reads whole when it connects, so the row limit does not apply to it."""
    catalog = True
    if not root.kind.startswith(STATEMENT_PREFIXES):
        raise SqlRefused(
            READONLY, "only SELECT, WITH, SHOW, DESCRIBE and EXISTS run here (read-only)"
        )
    if root.kind.startswith("Select") and any(c.kind == "Literal" for c in root.children):
        raise SqlRefused(READONLY, "INTO OUTFILE is not allowed here")
    if root.kind.startswith(("ExistsTable", "ShowCreateTable")):
        tables = [c for c in root.children if c.kind == "Identifier"][:1]
        for ident in tables:
            _check_table(ident.name, database)
    for node in root.walk():
        if node.kind == "TableIdentifier":
            catalog &= _check_table(node.name, database) in CATALOG_DATABASES
        elif node.kind == "Function":
            fn = node.name
            if node.parent is not None and node.parent.kind == "TableExpression":
                catalog = False
                if fn not in TABLE_FUNCTIONS:
                    raise SqlRefused(
                        ACCESS_DENIED, f"the table function {fn}() is not open to analysts' SQL"
                    )
            elif fn in REFUSED_FUNCTIONS:
                raise SqlRefused(ACCESS_DENIED, f"{fn}() is not open to analysts' SQL")
            elif fn in IN_FUNCTIONS and node.children and len(node.children[0].children) == 2:
                right = node.children[0].children[1]
                if right.kind == "Identifier":
                    catalog &= _check_table(right.name, database) in CATALOG_DATABASES
    return catalog


def output_format(root: Node, formats: frozenset[str], default: str) -> str:
    """The statement's FORMAT clause if it has one (the last top-level identifier naming an
    output format), else ``default``."""
    last = root.children[-1] if root.children else None
    if last is not None and last.kind == "Identifier" and last.name in formats:
        # EXISTS t / SHOW CREATE t name their table with an identifier too.
        named = [c for c in root.children if c.kind == "Identifier"]
        if not (root.kind.startswith(("ExistsTable", "ShowCreateTable")) and len(named) < 2):
            return last.name
    return default


def client_settings(
    params: dict[str, str], limits: Limits, catalog: bool = False
) -> dict[str, str]:
    """The settings to apply for a request's parameters: the room's limits (a client may
    tighten them, never lift them) and the harmless ones the client asked for."""
    applied: dict[str, str] = {}
    caps = limits.settings(catalog)
    for key, value in params.items():
        if key in TRANSPORT_PARAMS or key.startswith("param_"):
            continue
        if key == "readonly":
            if value.strip() not in {"1", "2"}:
                raise SqlRefused(
                    READONLY, "Cannot modify 'readonly' setting: queries here are read-only"
                )
            continue
        if key in ("max_result_rows", "max_execution_time", "max_memory_usage"):
            try:
                asked = float(value)
            except ValueError:
                raise SqlRefused(SYNTAX_ERROR, f"{key} must be a number") from None
            cap = float(caps[key]) or float("inf")
            chosen = min(asked if asked > 0 else cap, cap)
            caps[key] = "0" if chosen == float("inf") else _number(chosen)
            continue
        if key in ALLOWED_SETTINGS or key.startswith(ALLOWED_SETTING_PREFIXES):
            applied[key] = value
            continue
        raise SqlRefused(READONLY, f"Cannot modify '{key}' setting here: queries are read-only")
    for key in ("max_result_rows", "max_memory_usage"):
        caps[key] = str(int(float(caps[key])))
    return {**applied, **caps}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def escape_param(value: str) -> str:
    """A string as a query parameter value (ClickHouse reads them in escaped form)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def content_type(fmt: str) -> str:
    lower = fmt.lower()
    if lower.startswith(("json", "ndjson")) and "compact" not in lower and "each" not in lower:
        return "application/json; charset=UTF-8"
    if lower.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lower.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if lower in {
        "native",
        "rowbinary",
        "rowbinarywithnames",
        "rowbinarywithnamesandtypes",
        "parquet",
        "arrow",
        "arrowstream",
        "orc",
        "avro",
    }:
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"
