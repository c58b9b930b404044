"""Backfill of gauge readings from tables, into ``flood.gauge-readings`` (where the MQTT
bridge puts the live gauges' readings), keyed by station as they are.

Water-level history comes as tables, the way Dinas SDA and the pintu air posts keep it.
Read as they come:

- CSV (``,`` ``;`` tab or ``|``; UTF-8 or Windows-1252) or XLSX (every sheet);
- **wide**: a time column or a date and an hour column (``Tanggal`` + ``Jam``/``Pukul``),
  then one column per gate (``Katulampa (air)``, ``Depok``, ...); text columns beside them
  (weather, ``cuaca``) and id columns are not readings;
- **long**: one row per reading, with a gate column (``nama_pintu_air``, ``lokasi``,
  ``pos``, ``station``) and a value column (``tinggi_air``, ``tma``, ``level``, ``value``);
- rows of alert thresholds above or under the header (``Siaga 1``/``Siaga 2``/``Siaga 3``,
  or ``Waspada``/``Siaga``/``Awas``), or threshold columns in the long layout: compared
  with the registry's bands and a difference logged (alarms follow the registry);
- USGS Water Services JSON (``waterservices.usgs.gov/nwis/iv``): gage-height series;
- PetaBencana ``/floodgauges`` (GeoJSON or TopoJSON): each gauge's observations.

Dates are ISO or day first (``16/10/2021``), hours ``01:00``, ``01.00`` or ``1`` (``24:00``
is the next midnight); Indonesian decimals (``12,5``) are read; ``-``, ``tad`` or an empty
cell is no reading (skipped, counted). A time without an offset is local time
(SITROOM_TIMEZONE, or ``timezone`` in the map).

The map (``--map``: a TOML file, or inline ``Katulampa=BKB-SIMONGAN:cm,Depok=...``) names
the registry station (schemas/flood_stations.toml) and unit of each gate::

    unit = "cm"                 # the table's unit unless a gate says otherwise (cm, m, mm, ft)
    # timezone = "Asia/Jakarta" # of times without an offset (default: SITROOM_TIMEZONE)
    [gates]
    "Katulampa" = "BKB-SIMONGAN"
    "Depok" = { station = "GARANG-SAMPANGAN", unit = "m" }
    "Karet" = ""                # in the table, left out on purpose

Gate names match whatever the case, punctuation or a trailing ``(air)``; a unit in the
column's name (``Manggarai (m)``) counts unless the map gives one. Values are converted to
the station's unit (cm for a level, mm for rain). A gate that is not in the map is
dead-lettered once per file as ``unknown_entity``, saying how many readings it had and how
to map it; its readings are skipped and counted. A value outside the station's range is
dead-lettered with a hint when another unit would fit.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from connectors.base import Source, SourceError
from connectors.flood_report_import import FeatureError, geo_features, load_json_lenient, parse_time
from connectors.publisher import KafkaPublisher
from schemas.catalog import GAUGE_READINGS
from schemas.deadletter import Reason
from schemas.flood import GaugeKind, GaugeReading, Station, StationRegistry

log = logging.getLogger(__name__)

BATCH = 500
# Factors to the station's unit: cm for a level, mm for rain.
TO_CM = {"cm": 1.0, "m": 100.0, "mm": 0.1, "ft": 30.48, "in": 2.54}
TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4, "ft": 304.8}
UNIT_NAMES = {"cm": "cm", "centimeter": "cm", "centimetre": "cm", "sentimeter": "cm",
              "m": "m", "meter": "m", "metre": "m", "mm": "mm", "millimeter": "mm",
              "milimeter": "mm", "ft": "ft", "feet": "ft", "foot": "ft", "in": "in",
              "inch": "in", "inches": "in"}  # fmt: skip

NO_READING = "no reading"
NOT_IN_MAP = "gate not in the map"
LEFT_OUT = "left out by the map"
NOT_A_LEVEL = "not a water level or rain series"
SUMMARY_ROW = "summary row"

_MISSING = {
    "",
    "-",
    "--",
    "\u2014",
    "\u2013",
    "tad",
    "t.a.d",
    "n/a",
    "na",
    "nan",
    "null",
    "none",
    "x",
    "?",
}
_TIME_HEADER = re.compile(
    r"^(tanggal|tgl|date|datetime|date ?time|timestamp|waktu|time|jam|pukul|hour|periode)\b"
)
_DATE_HEADER = re.compile(r"^(tanggal|tgl|date|datetime|date ?time|timestamp|waktu|periode)\b")
_HOUR_HEADER = re.compile(r"^(jam|pukul|time|hour)\b")
_GATE_HEADER = re.compile(
    r"^(nama )?(pintu air|pos( pantau| duga air)?|stasiun|station|site|gauge|gate|lokasi|nama)\b"
)
_VALUE_HEADER = re.compile(
    r"^(tinggi( muka)? air|tma|ketinggian( air)?|water ?level|level|value|nilai|stage)\b"
)
_ID_HEADER = re.compile(r"^(id|no|nomor|number|index|row|urut)\b|\bid$")
_SUMMARY = re.compile(r"^(rata|rerata|average|mean|max|maks|min|jumlah|total|sum|keterangan)\b")
_THRESHOLD = re.compile(r"^(siaga|waspada|awas|alert|batas|threshold)\b")
_UNIT_SUFFIX = re.compile(r"\((cm|m|mm|ft|in)\)", re.IGNORECASE)


class MapError(ValueError):
    """The map cannot be used; the message says why, for the command line."""


def norm(name: str) -> str:
    """A gate name for matching: no case, parentheses, punctuation or repeated blanks."""
    text = re.sub(r"\([^)]*\)", " ", str(name)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def _header(name: Any) -> str:
    return " ".join(re.sub(r"[_\W]+", " ", str(name or "")).casefold().split())


def _unit(text: str, where: str) -> str:
    unit = UNIT_NAMES.get(text.strip().casefold())
    if unit is None:
        raise MapError(f"{where}: unit {text!r} is not one of cm, m, mm, ft, in")
    return unit


@dataclass(frozen=True)
class Target:
    station: Station
    unit: str | None  # None: from the column's name, else the map's default


@dataclass
class GaugeMap:
    gates: dict[str, Target | None]  # normalized gate name → target (None: left out)
    names: dict[str, str]  # normalized → as written in the map
    unit: str = "cm"
    zone: tzinfo | None = None
    where: str = "the map"
    used: set[str] = field(default_factory=set)

    def find(self, *names: str) -> tuple[str, Target | None] | None:
        """The map's entry for the first of ``names`` it has: (its key, target)."""
        for name in names:
            key = norm(name)
            if key and key in self.gates:
                self.used.add(key)
                return key, self.gates[key]
        return None


def load_map(spec: str, registry: StationRegistry, default_unit: str = "cm") -> GaugeMap:
    """The gate map from a TOML file or inline ``NAME=STATION[:UNIT],...``; MapError if
    it names a station the registry lacks, a unit not known, or nothing at all."""
    path = Path(spec)
    entries: dict[str, Any]
    top: dict[str, Any] = {}
    where = spec
    if path.is_file():
        try:
            top = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MapError(f"{path}: not a TOML map: {exc}") from None
        entries = top.get("gates") or top.get("stations") or top.get("map") or {}
        if not isinstance(entries, dict):
            raise MapError(f"{path}: [gates] must be a table of gate = station")
    elif "=" in spec:
        where = "--map"
        entries = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            name, _, target = part.partition("=")
            sid, _, gate_unit_text = target.partition(":")
            entries[name.strip()] = (
                {"station": sid.strip(), "unit": gate_unit_text.strip()}
                if gate_unit_text.strip()
                else sid.strip()
            )
    else:
        raise MapError(f"no such map file: {spec} (or give NAME=STATION[:UNIT],... inline)")
    unit = _unit(str(top.get("unit") or default_unit), where)
    zone: tzinfo | None = None
    if top.get("timezone"):
        try:
            zone = ZoneInfo(str(top["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise MapError(f"{where}: unknown time zone {top['timezone']!r}") from None
    stations = registry.by_id()
    gates: dict[str, Target | None] = {}
    names: dict[str, str] = {}
    for name, value in entries.items():
        station_id, gate_unit = (
            (value.get("station", ""), value.get("unit"))
            if isinstance(value, dict)
            else (value, None)
        )
        key = norm(name)
        if not key:
            raise MapError(f"{where}: gate name {name!r} has no letters or digits")
        names[key] = name
        if not str(station_id or "").strip():
            gates[key] = None
            continue
        station = stations.get(str(station_id).strip())
        if station is None:
            known = ", ".join(sorted(stations))
            raise MapError(
                f"{where}: gate {name!r} names station {station_id!r}, which is not in"
                f" schemas/flood_stations.toml (stations: {known})"
            )
        gates[key] = Target(
            station, _unit(str(gate_unit), f"{where}: gate {name!r}") if gate_unit else None
        )
    if not gates:
        raise MapError(f'{where}: maps no gate; give [gates] "name in the table" = "STATION-ID"')
    return GaugeMap(gates, names, unit, zone, where)


def number(value: Any) -> float | None:
    """A reading as a float; None for a missing one; ValueError for text."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if text.casefold() in _MISSING:
        return None
    if "," in text and "." in text:  # the last separator is the decimal one
        text = (
            text.replace(".", "").replace(",", ".")
            if text.rfind(",") > text.rfind(".")
            else text.replace(",", "")
        )
    elif "," in text:
        text = text.replace(",", ".") if text.count(",") == 1 else text.replace(",", "")
    elif text.count(".") > 1:
        text = text.replace(".", "")
    result = float(text)
    if not math.isfinite(result):
        raise ValueError(value)
    return result


_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%y", "%d %B %Y", "%d %b %Y")


def _day_and_time(value: Any) -> tuple[date, time | None]:
    if isinstance(value, datetime):  # a spreadsheet's date cell: midnight unless it says
        return value.date(), value.timetz()
    if isinstance(value, date):
        return value, None
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(
            text.replace("/", "-") if re.match(r"^\d{4}/", text) else text
        )
        has_time = bool(re.search(r"\d[T ]\d", text))
        return moment.date(), (moment.timetz() if has_time else None)
    except ValueError:
        pass
    head, _, rest = text.partition(" ")
    for fmt in _DATE_FORMATS:
        for candidate, tail in ((text, ""), (head, rest)):
            try:
                day = datetime.strptime(candidate, fmt).date()
            except ValueError:
                continue
            return day, (_hour(tail) if tail.strip() else None)
    raise ValueError(f"{text!r} is not a date")


def _hour(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 <= value < 1:  # a spreadsheet's fraction of a day
            return (datetime.min + timedelta(days=float(value))).time().replace(microsecond=0)
        if value == int(value) and 0 <= value <= 24:
            return time(int(value) % 24) if value < 24 else time(0)
    text = str(value).strip().casefold().replace("wib", "").strip()
    m = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?(?:[:.](\d{2}))?", text)
    if not m:
        raise ValueError(f"{value!r} is not an hour")
    hour, minute, second = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    if hour == 24 and minute == 0 and second == 0:
        return time(0, tzinfo=None).replace(fold=1)  # fold marks "end of the day"
    return time(hour, minute, second)


def timestamp(day_cell: Any, hour_cell: Any, zone: tzinfo) -> datetime:
    day, clock = _day_and_time(day_cell)
    if hour_cell is not None and str(hour_cell).strip() != "":
        clock = _hour(hour_cell)
    if clock is None:
        raise ValueError("gives a day but no hour, and the table has no hour column (Jam, Pukul)")
    moment = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    if clock.fold:  # 24:00 is the next day's midnight
        moment += timedelta(days=1)
    if clock.tzinfo is not None:
        return moment.replace(tzinfo=clock.tzinfo).astimezone(UTC)
    return moment.replace(tzinfo=zone).astimezone(UTC)


def _band_of(label: str) -> str | None:
    """Jakarta's Siaga numbering runs down: Siaga 3 is Waspada, 2 Siaga, 1 Awas, 4 normal."""
    text = _header(label)
    numbered = re.match(r"^siaga (1|2|3|4|i{1,3}|iv)\b", text)
    if numbered:
        return {"1": "awas", "i": "awas", "2": "siaga", "ii": "siaga", "3": "waspada",
                "iii": "waspada"}.get(numbered.group(1))  # fmt: skip
    for band in ("waspada", "siaga", "awas"):
        if text.startswith(band):
            return band
    return None


@dataclass
class Reading:
    """One value read from a table, before the map says what it is."""

    gate: str  # as in the table
    names: tuple[str, ...]  # names to look the gate up by (column, gate name, site code)
    value: Any
    when: datetime | None
    where: str
    unit: str | None = None  # given by the table (a column's "(m)", a series' unit)
    kind: GaugeKind | None = None  # given by the table (USGS: gage height or rain)
    problem: tuple[Reason, str] | None = None  # a time that could not be read
    skip: str | None = None  # a record that is no reading (why)


@dataclass
class Table:
    """Readings of one sheet or file, and the thresholds its header gave per gate."""

    readings: Iterator[Reading]
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits the header (the first line with a time column) into
    the most cells: ``;`` tables with decimal commas fool a plain sniffer."""
    best, most = None, 1
    for d in (",", ";", "\t", "|"):
        for line in lines:
            cells = next(csv.reader([line], delimiter=d), [])
            if len(cells) >= 2 and any(_TIME_HEADER.match(_header(c)) for c in cells):
                if len(cells) > most:
                    best, most = d, len(cells)
                break
    return best


def csv_rows(data: bytes) -> list[list[Any]]:
    text = _decode(data)
    lines = text.splitlines()[:40]
    delimiter = _delimiter(lines)
    if delimiter is not None:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    try:
        dialect: Any = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return list(csv.reader(io.StringIO(text), dialect))


def xlsx_sheets(path: Path) -> list[tuple[str, list[list[Any]]]]:
    from openpyxl import load_workbook  # only for spreadsheets

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a file that is no workbook
        raise SourceError(f"{path}: not a readable XLSX workbook: {exc}") from exc
    try:
        return [
            (ws.title, [list(r) for r in ws.iter_rows(values_only=True)]) for ws in book.worksheets
        ]
    finally:
        book.close()


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _numeric(cell: Any) -> bool:
    try:
        return number(cell) is not None
    except ValueError:
        return False


def table(rows: list[list[Any]], where: str, zone: tzinfo) -> Table | None:
    """The readings of a grid of cells; None when no header with a time column is found."""
    header_at = None
    for i, row in enumerate(rows[:40]):
        if any(_TIME_HEADER.match(_header(c)) for c in row if not _blank(c)):
            header_at = i
            break
    if header_at is None:
        return None
    header = [str(c).strip() if not _blank(c) else "" for c in rows[header_at]]
    names = [_header(c) for c in header]
    date_col = next((i for i, n in enumerate(names) if _DATE_HEADER.match(n)), None)
    hour_col = next(
        (i for i, n in enumerate(names) if _HOUR_HEADER.match(n) and i != date_col), None
    )
    if date_col is None:
        date_col, hour_col = hour_col, None
    assert date_col is not None
    gate_col = next(
        (i for i, n in enumerate(names) if _GATE_HEADER.match(n) and i not in (date_col, hour_col)),
        None,
    )
    value_col = next((i for i, n in enumerate(names) if _VALUE_HEADER.match(n) and i not in (date_col, hour_col, gate_col)), None)  # fmt: skip
    data = rows[header_at + 1 :]
    thresholds: dict[str, dict[str, float]] = {}

    def threshold_row(row: list[Any]) -> str | None:
        first = next((c for c in row if not _blank(c)), None)
        return (
            _band_of(str(first)) if first is not None and _THRESHOLD.match(_header(first)) else None
        )

    if gate_col is not None and value_col is not None:
        band_cols = {
            i: b
            for i, n in enumerate(names)
            if (b := _band_of(n)) and i not in (gate_col, value_col)
        }
        return Table(_long(data, header_at, date_col, hour_col, gate_col, value_col, band_cols,
                           header, where, zone, thresholds), thresholds)  # fmt: skip
    roles = {date_col, hour_col}
    reading_cols = []
    for i, n in enumerate(names):
        if i in roles or not header[i] or _ID_HEADER.search(n):
            continue
        cells = [r[i] for r in data[:200] if i < len(r) and not _blank(r[i])]
        if cells and sum(_numeric(c) for c in cells) >= max(1, len(cells) // 2):
            reading_cols.append(i)
    # Thresholds: labelled rows above the header, or right under it before the data.
    for row in [*rows[:header_at], *data[:6]]:
        band = threshold_row(row)
        if band is None:
            continue
        for i in reading_cols:
            if i < len(row) and _numeric(row[i]):
                thresholds.setdefault(header[i], {})[band] = number(row[i])  # type: ignore[assignment]
    return Table(_wide(data, header_at, date_col, hour_col, reading_cols, header, where, zone, threshold_row), thresholds)  # fmt: skip


def _row_time(row: list[Any], date_col: int, hour_col: int | None, zone: tzinfo) -> tuple[datetime | None, str | None, tuple[Reason, str] | None]:  # fmt: skip
    """(time, skip reason, problem) of a data row."""
    day = row[date_col] if date_col < len(row) else None
    hour = row[hour_col] if hour_col is not None and hour_col < len(row) else None
    if _blank(day):
        return None, SUMMARY_ROW, None
    if isinstance(day, str) and _SUMMARY.match(_header(day)):
        return None, SUMMARY_ROW, None
    try:
        return timestamp(day, hour, zone), None, None
    except ValueError as exc:
        label = "date" if hour_col is None else "date and hour"
        return (
            None,
            None,
            (Reason.SCHEMA, f"{label} {day!r}{'' if hour is None else f' {hour!r}'}: {exc}"),
        )


def _wide(data: list[list[Any]], header_at: int, date_col: int, hour_col: int | None,
          cols: list[int], header: list[str], where: str, zone: tzinfo, threshold_row: Any) -> Iterator[Reading]:  # fmt: skip
    for n, row in enumerate(data, header_at + 2):
        if all(_blank(c) for c in row) or threshold_row(row):
            continue
        when, skip, problem = _row_time(row, date_col, hour_col, zone)
        for i in cols:
            value = row[i] if i < len(row) else None
            if skip and _blank(value):
                continue
            unit = _UNIT_SUFFIX.search(header[i])
            yield Reading(header[i], (header[i],), value, when, f"{where}:{n}", unit.group(1).lower() if unit else None,
                          problem=problem, skip=skip)  # fmt: skip


def _long(data: list[list[Any]], header_at: int, date_col: int, hour_col: int | None, gate_col: int,
          value_col: int, band_cols: dict[int, str], header: list[str], where: str, zone: tzinfo,
          thresholds: dict[str, dict[str, float]]) -> Iterator[Reading]:  # fmt: skip
    unit = _UNIT_SUFFIX.search(header[value_col])
    for n, row in enumerate(data, header_at + 2):
        if all(_blank(c) for c in row):
            continue
        gate = (
            str(row[gate_col]).strip() if gate_col < len(row) and not _blank(row[gate_col]) else ""
        )
        when, skip, problem = _row_time(row, date_col, hour_col, zone)
        if not gate:
            skip = skip or SUMMARY_ROW
        for i, band in band_cols.items():
            if gate and i < len(row) and _numeric(row[i]):
                thresholds.setdefault(gate, {})[band] = number(row[i])  # type: ignore[assignment]
        value = row[value_col] if value_col < len(row) else None
        yield Reading(gate, (gate,), value, when, f"{where}:{n}", unit.group(1).lower() if unit else None,
                      problem=problem, skip=skip)  # fmt: skip


def usgs(doc: dict[str, Any], where: str) -> Table:
    """USGS Water Services (WaterML as JSON): gage height and precipitation series."""

    def readings() -> Iterator[Reading]:
        for series in doc["value"].get("timeSeries") or []:
            info, variable = series.get("sourceInfo", {}), series.get("variable", {})
            code = (info.get("siteCode") or [{}])[0].get("value", "")
            site = info.get("siteName", code)
            vname = str(variable.get("variableName", ""))
            unit = str((variable.get("unit") or {}).get("unitCode", "")).casefold()
            nodata = variable.get("noDataValue")
            lowered = vname.casefold()
            kind = (GaugeKind.LEVEL if ("height" in lowered or "stage" in lowered or "level" in lowered)
                    else GaugeKind.RAIN if "precipitation" in lowered else None)  # fmt: skip
            for block in series.get("values") or []:
                for n, point in enumerate(block.get("value") or [], 1):
                    at = f"{where}:{series.get('name', code)}:{n}"
                    value = point.get("value")
                    skip = None
                    if kind is None:
                        skip = NOT_A_LEVEL
                    elif nodata is not None and _numeric(value) and number(value) == float(nodata):
                        value = None
                    try:
                        when, problem = parse_time(point.get("dateTime"), UTC, "dateTime"), None
                    except FeatureError as exc:
                        when, problem = None, (exc.reason, str(exc))
                    yield Reading(f"{site} ({code})", (code, site, f"{site} ({code})"), value, when, at,
                                  UNIT_NAMES.get(unit), kind, problem, skip)  # fmt: skip

    return Table(readings())


def floodgauges(doc: Any, path: Path, where: str) -> Table:
    """PetaBencana /floodgauges: each gauge's observations (f1 time, f2 depth in cm)."""

    def readings() -> Iterator[Reading]:
        for props, _ in geo_features(doc, path):
            gid, gname = str(props.get("gaugeid", "")), str(props.get("gaugenameid", ""))
            for n, obs in enumerate(props.get("observations") or [], 1):
                obs = obs if isinstance(obs, dict) else {}
                try:
                    when, problem = parse_time(obs.get("f1"), UTC, "f1"), None
                except FeatureError as exc:
                    when, problem = None, (exc.reason, str(exc))
                yield Reading(gname or gid, (gid, gname), obs.get("f2"), when,
                              f"{where}:{gid}:{n}", "cm", problem=problem)  # fmt: skip

    return Table(readings())


def read_tables(path: Path, zone: tzinfo) -> Iterator[tuple[str, Table]]:
    suffix = path.suffix.casefold()
    if suffix in (".xlsx", ".xlsm"):
        found = False
        for title, rows in xlsx_sheets(path):
            t = table(rows, f"{path}[{title}]", zone)
            if t is None:
                log.warning(
                    "sheet without a time column left out",
                    extra={"file": str(path), "sheet": title},
                )
                continue
            found = True
            yield f"{path}[{title}]", t
        if not found:
            raise SourceError(
                f"{path}: no sheet has a header with a time column (Tanggal, Jam, Waktu, Date, ...)"
            )
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc
    if data[:4] == b"PK\x03\x04":
        raise SourceError(
            f"{path}: a ZIP or spreadsheet file; name it .xlsx to read it as a workbook"
        )
    if suffix in (".json", ".geojson", ".topojson") or data.lstrip()[:1] in (b"{", b"["):
        doc = load_json_lenient(data, path)
        if (
            isinstance(doc, dict)
            and isinstance(doc.get("value"), dict)
            and "timeSeries" in doc["value"]
        ):
            yield str(path), usgs(doc, str(path))
            return
        yield str(path), floodgauges(doc, path, str(path))
        return
    t = table(csv_rows(data), str(path), zone)
    if t is None:
        raise SourceError(
            f"{path}: no header with a time column (Tanggal, Jam, Waktu, Date, ...) in its first 40 rows"
        )
    yield str(path), t


def _key(event: BaseModel) -> str:
    assert isinstance(event, GaugeReading)
    return event.station_id


@dataclass
class _Unmapped:
    column: str
    first_raw: bytes
    where: str
    readings: int = 0


class GaugeReplay(Source):
    name = "gauge-replay"
    finite = True
    topic = GAUGE_READINGS

    def __init__(self, files: Sequence[Path], gates: GaugeMap, zone: tzinfo,
                 source: str = "gauge-replay") -> None:  # fmt: skip
        self.files = list(files)
        self.map = gates
        self.zone = gates.zone or zone
        self.source = source
        self.seen: Counter[str] = Counter()  # gates met, for the last word

    def key(self, event: BaseModel) -> str:
        return _key(event)

    def emptiness(self) -> str:
        if not self.seen:
            return "the tables held no gate readings"
        names = ", ".join(f"{g!r}" for g, _ in self.seen.most_common(12))
        return f"gates in the tables: {names}; the map ({self.map.where}) names {', '.join(repr(n) for n in self.map.names.values())}"

    def convert(self, r: Reading, target: Target) -> tuple[float | None, tuple[Reason, str] | None]:
        """The value in the station's unit, or why not."""
        station = target.station
        try:
            value = number(r.value)
        except ValueError:
            return None, (Reason.SCHEMA, f"{r.gate!r} at {r.when:%Y-%m-%d %H:%M} UTC: {str(r.value)[:40]!r} is not a number")  # fmt: skip
        if value is None:
            return None, None
        unit = target.unit or r.unit or self.map.unit
        factors = TO_CM if station.kind is GaugeKind.LEVEL else TO_MM
        converted = round(value * factors[unit], 3)
        if not station.min_value <= converted <= station.max_value:
            base = "cm" if station.kind is GaugeKind.LEVEL else "mm"
            fits = [
                u
                for u, f in factors.items()
                if u != unit and station.min_value <= value * f <= station.max_value
            ]
            hint = f"; read in {fits[0]} it would fit (set its unit in the map)" if fits else ""
            return None, (Reason.IMPOSSIBLE_VALUE,
                          f"{r.gate!r} {value:g} {unit} = {converted:g} {base} is outside {station.id}'s"
                          f" {station.min_value:g}..{station.max_value:g} {base}{hint}")  # fmt: skip
        return converted, None

    def _thresholds(self, where: str, t: Table) -> None:
        for gate, bands in t.thresholds.items():
            found = self.map.find(gate)
            if found is None or found[1] is None:
                continue
            station = found[1].station
            unit = found[1].unit or (
                m.group(1).lower() if (m := _UNIT_SUFFIX.search(gate)) else self.map.unit
            )
            table_cm = {b: round(v * TO_CM[unit], 1) for b, v in bands.items()}
            ours = {"waspada": station.waspada, "siaga": station.siaga, "awas": station.awas}
            differ = {b: (v, ours[b]) for b, v in table_cm.items() if ours.get(b) != v}
            if differ:
                said = ", ".join(f"{b} {v:g} cm (registry {o if o is None else f'{o:g}'})" for b, (v, o) in differ.items())  # fmt: skip
                log.warning(
                    f"{where}: thresholds of {gate!r} differ from station {station.id}'s bands in"
                    f" schemas/flood_stations.toml: {said}; alarms follow the registry",
                    extra={"connector": self.name, "gate": gate, "station": station.id},
                )

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        batch: list[GaugeReading] = []
        for path in self.files:
            unmapped: dict[str, _Unmapped] = {}
            for where, t in read_tables(path, self.zone):
                for r in t.readings:
                    if r.skip is not None:
                        publisher.skip(r.skip)
                        continue
                    self.seen[r.gate] += 1
                    found = self.map.find(*r.names)
                    if found is None:
                        u = unmapped.get(r.gate)
                        if u is None:
                            raw = json.dumps(
                                {"gate": r.gate, "value": r.value, "at": r.where}, default=str
                            ).encode()
                            unmapped[r.gate] = u = _Unmapped(r.gate, raw, r.where)
                        else:
                            publisher.skip(NOT_IN_MAP)
                        u.readings += 1
                        continue
                    target = found[1]
                    if target is None:
                        publisher.skip(LEFT_OUT)
                        continue
                    raw = json.dumps(
                        {"gate": r.gate, "value": r.value, "at": r.where}, default=str
                    ).encode()
                    if r.problem is not None:
                        await publisher.dead_letter(raw, r.problem[0].value, r.problem[1], r.where)
                        continue
                    if r.kind is not None and r.kind is not target.station.kind:
                        await publisher.dead_letter(raw, Reason.SCHEMA.value,
                            f"{r.gate!r} is a {r.kind} series but station {target.station.id} is a {target.station.kind} gauge", r.where)  # fmt: skip
                        continue
                    assert r.when is not None
                    value, problem = self.convert(r, target)
                    if problem is not None:
                        await publisher.dead_letter(raw, problem[0].value, problem[1], r.where)
                        continue
                    if value is None:
                        publisher.skip(NO_READING)
                        continue
                    batch.append(GaugeReading(station_id=target.station.id, kind=target.station.kind,
                                              value=value, timestamp=r.when, source=self.source))  # fmt: skip
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
                self._thresholds(where, t)
            for u in unmapped.values():
                await publisher.dead_letter(
                    u.first_raw, Reason.UNKNOWN_ENTITY.value,
                    f"gate {u.column!r} is not in the map ({self.map.where}): its {u.readings:,} readings"
                    f" in {path.name} were not replayed; map it to a station of"
                    f" schemas/flood_stations.toml, or to \"\" to leave it out",
                    u.where,
                )  # fmt: skip
        unused = [name for key, name in self.map.names.items() if key not in self.map.used]
        if unused:
            log.warning(
                f"map entries that matched no gate in the tables: {', '.join(map(repr, unused))}",
                extra={"connector": self.name},
            )
        if batch:
            yield batch
