"""What analysts' SQL may do, decided on ClickHouse's own parse (EXPLAIN AST output)."""

from __future__ import annotations

import re

import pytest

from schemas.clickhouse_ddl import DDL
from schemas.ddl_departments import REPORT_DEADLINES
from schemas.sql_policy import (
    PERSONAL_TABLES,
    Limits,
    SqlRefused,
    check_statement,
    client_settings,
    escape_param,
    output_format,
    parse_ast,
)

LIMITS = Limits(max_rows=100, max_seconds=30, max_memory_bytes=1 << 30)
FORMATS = frozenset({"JSON", "TabSeparated", "CSV", "Native"})

JOIN = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 3)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 2)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier traffic_segment_5m (alias t)
    TablesInSelectQueryElement (children 2)
     TableExpression (children 1)
      Subquery (alias y) (children 1)
       SelectWithUnionQuery (children 1)
        ExpressionList (children 1)
         SelectQuery (children 2)
          ExpressionList (children 1)
           Asterisk
          TablesInSelectQuery (children 1)
           TablesInSelectQueryElement (children 1)
            TableExpression (children 1)
             TableIdentifier {inner}
     TableJoin (children 1)
      Literal UInt64_1
   Function in (children 1)
    ExpressionList (children 2)
     Identifier segment_id
     Identifier {in_table}
 Identifier JSON
"""


def tree(inner: str = "prices_daily", in_table: str = "transit_vehicle_1m") -> str:
    return JOIN.format(inner=inner, in_table=in_table)


def test_a_join_of_open_tables_runs_and_its_format_is_read() -> None:
    root = parse_ast(tree())
    assert check_statement(root, "default") is False  # reads data: the row limit applies
    assert output_format(root, FORMATS, "TabSeparated") == "JSON"


@pytest.mark.parametrize("table", sorted(PERSONAL_TABLES))
@pytest.mark.parametrize("where", ["inner", "in_table"])
def test_a_personal_table_is_refused_wherever_it_hides(table: str, where: str) -> None:
    for name in (table, f"default.{table}"):
        with pytest.raises(SqlRefused, match="personal data") as caught:
            check_statement(parse_ast(tree(**{where: name})), "default")
        assert caught.value.status == 403


def test_a_column_named_like_a_personal_table_is_no_table() -> None:
    dump = tree().replace("Identifier segment_id", "Identifier reports")
    check_statement(parse_ast(dump), "default")


@pytest.mark.parametrize(
    ("dump", "words"),
    [
        ("InsertQuery   (children 1)\n Identifier t\n", "read-only"),
        ("Explain EXPLAIN (children 1)\n SelectWithUnionQuery\n", "read-only"),
        (
            "SelectWithUnionQuery (children 2)\n ExpressionList\n Literal \\'leak.tsv\\'\n",
            "OUTFILE",
        ),
        (
            "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"
            "   TablesInSelectQuery (children 1)\n    TablesInSelectQueryElement (children 1)\n"
            "     TableExpression (children 1)\n      Function merge (children 1)\n",
            "merge()",
        ),
        (
            "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Function file (children 1)\n",
            "file()",
        ),
        (
            "SelectWithUnionQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier system.query_log\n",
            "system.query_log",
        ),
        (
            "SelectWithUnionQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier other.t\n",
            "only the database default",
        ),
        ("ExistsTableQuery  cctv_events (children 1)\n Identifier cctv_events\n", "personal data"),
    ],
)
def test_what_is_not_a_read_of_open_tables_is_refused(dump: str, words: str) -> None:
    with pytest.raises(SqlRefused, match=re.escape(words)):
        check_statement(parse_ast(dump), "default")


def test_the_catalog_is_read_without_the_row_limit() -> None:
    dump = "SelectWithUnionQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier system.settings\n"
    assert check_statement(parse_ast(dump), "default") is True
    assert client_settings({}, LIMITS, catalog=True)["max_result_rows"] == "0"
    show = parse_ast("ShowTables (children 1)\n Identifier system\n")
    assert check_statement(show, "default") is True
    assert output_format(show, FORMATS, "TabSeparated") == "TabSeparated"
    exists = parse_ast("ExistsTableQuery  JSON (children 1)\n Identifier JSON\n")
    assert output_format(exists, FORMATS, "TSV") == "TSV"


def test_a_client_tightens_the_limits_never_lifts_them() -> None:
    base = client_settings({}, LIMITS)
    assert base["max_result_rows"] == "100" and "readonly" not in base  # the engine sets it last
    assert base["result_overflow_mode"] == "throw" and base["max_execution_time"] == "30"
    tight = client_settings({"max_result_rows": "5", "max_execution_time": "60"}, LIMITS)
    assert tight["max_result_rows"] == "5" and tight["max_execution_time"] == "30"
    unlimited = client_settings({"max_result_rows": "0", "max_memory_usage": "0"}, LIMITS)
    assert unlimited["max_result_rows"] == "100"
    assert unlimited["max_memory_usage"] == str(1 << 30)
    shown = client_settings(
        {
            "output_format_json_quote_64bit_integers": "0",
            "query_id": "x",
            "param_v": "1",
            "session_id": "s",
            "readonly": "1",
            "database": "default",
        },
        LIMITS,
    )
    assert shown["output_format_json_quote_64bit_integers"] == "0"
    assert "query_id" not in shown and "param_v" not in shown and "readonly" not in shown
    for key, value in (
        ("allow_ddl", "1"),
        ("readonly", "0"),
        ("additional_table_filters", "{}"),
        ("result_overflow_mode", "break"),
    ):
        with pytest.raises(SqlRefused, match=key):
            client_settings({key: value}, LIMITS)


def test_a_statement_travels_as_a_parameter_value_intact() -> None:
    assert escape_param("SELECT 'a\\b'\n\tFROM t\r") == "SELECT 'a\\\\b'\\n\\tFROM t\\r"


def test_views_never_show_personal_columns() -> None:
    """A view is read as the view, not its tables: only report_deadlines reads a personal
    table, and it leaves the personal columns out."""
    views = [s for s in DDL if "CREATE OR REPLACE VIEW" in s]
    for view in views:
        read = set(re.findall(r"FROM\s+(\w+)", view))
        if REPORT_DEADLINES in view:
            columns = view.split("SELECT", 1)[1].split("FROM", 1)[0]
            assert not {"text", "lat", "lon", "photo_urls", "last_actor", "last_note"} & set(
                re.findall(r"\w+", columns)
            )
        else:
            assert not read & PERSONAL_TABLES, view
