"""Citizen reports (laporan masyarakat): lifecycle events, reporters' contacts, routing.

A report is a stream of :class:`ReportEvent` keyed by report id: ``received`` (with the
category, text, place and photos), then ``assigned``, ``in_progress``, ``resolved`` or
``rejected``. The reporter's contact travels apart (:class:`ReportContact`, its own topic
and table) so that analysts' tables never hold it. Which department (OPD) answers a
category, and how soon, is configuration: ``schemas/report_routing.toml``.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

ROUTING_FILE = Path(__file__).with_name("report_routing.toml")
MAX_PHOTOS = 10


class ReportStatus(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REJECTED = "rejected"


TERMINAL = frozenset({ReportStatus.RESOLVED, ReportStatus.REJECTED})

# The lifecycle: which status may follow which. Re-assignment (assigned → assigned, or
# back from in_progress) is allowed while a report is open; it must name another department.
_NEXT: dict[ReportStatus, frozenset[ReportStatus]] = {
    ReportStatus.RECEIVED: frozenset({ReportStatus.ASSIGNED, ReportStatus.REJECTED}),
    ReportStatus.ASSIGNED: frozenset(
        {ReportStatus.ASSIGNED, ReportStatus.IN_PROGRESS, ReportStatus.REJECTED}
    ),
    ReportStatus.IN_PROGRESS: frozenset(
        {ReportStatus.ASSIGNED, ReportStatus.RESOLVED, ReportStatus.REJECTED}
    ),
    ReportStatus.RESOLVED: frozenset(),
    ReportStatus.REJECTED: frozenset(),
}


def transition_problem(
    current: ReportStatus | None,
    new: ReportStatus,
    current_department: str | None = None,
    new_department: str | None = None,
) -> str | None:
    """Why the lifecycle forbids ``current`` → ``new`` (None: allowed).

    Shared by the API (a 409 on the state it can see) and the worker (the authority).
    """
    if current is None:
        return None if new is ReportStatus.RECEIVED else f"no report received yet, cannot {new}"
    if new is ReportStatus.RECEIVED:
        return "report already received"
    if current in TERMINAL:
        return f"report is {current}, a closed report cannot become {new}"
    if new not in _NEXT[current]:
        allowed = ", ".join(sorted(_NEXT[current])) or "nothing"
        return f"{current} cannot become {new} (allowed: {allowed})"
    if (
        new is ReportStatus.ASSIGNED
        and current is not ReportStatus.RECEIVED
        and (not new_department or new_department == current_department)
    ):
        return f"re-assignment from {current} must name another department"
    return None


def allowed_next(current: ReportStatus) -> list[ReportStatus]:
    return sorted(_NEXT[current])


class ReportEvent(BaseModel):
    """One step of a report's life. ``received`` carries the report itself."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    report_id: str = Field(min_length=1, max_length=64)
    kind: ReportStatus
    timestamp: AwareDatetime
    department: str | None = Field(
        None, max_length=128, description="assigned: the department taking it (default: routed)"
    )
    actor: str | None = Field(None, max_length=128, description="who made the change")
    actor_department: str | None = Field(
        None,
        max_length=128,
        description="the department the actor moves it for (null: the room); the worker "
        "refuses a move of another department's report as forbidden",
    )
    note: str | None = Field(None, max_length=2000)
    # received only
    category: str | None = Field(None, max_length=64)
    text: str | None = Field(None, max_length=4000)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    channel: str = Field("unknown", max_length=64, description="api, lapor, whatsapp, ...")
    source: str = Field("unknown", max_length=64, description="the connector or app")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("photo_urls")
    @classmethod
    def _http_only(cls, value: list[HttpUrl]) -> list[HttpUrl]:
        for url in value:
            if url.scheme not in ("http", "https"):
                raise ValueError(f"photo URL must be http(s): {url}")
        return value

    @model_validator(mode="after")
    def _received_is_complete(self) -> ReportEvent:
        if self.kind is ReportStatus.RECEIVED:
            missing = [
                name
                for name in ("category", "text", "lat", "lon")
                if getattr(self, name) in (None, "")
            ]
            if missing:
                raise ValueError(f"a received report needs {', '.join(missing)}")
        return self


class ReportContact(BaseModel):
    """The reporter's contact: kept on its own topic and table, never in analysts' tables."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    report_id: str = Field(min_length=1, max_length=64)
    timestamp: AwareDatetime
    name: str | None = Field(None, max_length=128)
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()-]{6,32}$")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    channel: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def is_empty(self) -> bool:
        return not (self.name or self.phone or self.email)


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    name: str
    department: str
    sla_hours: float = Field(gt=0, description="time to resolve before the SLA is breached")


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    departments: list[str] = Field(min_length=1)
    categories: list[Category] = Field(alias="category", min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        ids = [c.id for c in self.categories]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate category ids")
        unknown = {c.department for c in self.categories} - set(self.departments)
        if unknown:
            raise ValueError(f"categories routed to unlisted departments: {sorted(unknown)}")
        return self

    def get(self, category: str) -> Category | None:
        return next((c for c in self.categories if c.id == category), None)


class RoutingError(ValueError):
    """The routing file is missing or invalid; the message names the file and the field."""


@lru_cache(maxsize=4)
def load_routing(path: Path | None = None) -> Routing:
    path = path or ROUTING_FILE
    try:
        return Routing.model_validate(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RoutingError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RoutingError(f"{path}: {where}: {first['msg']}") from exc


class ReportsConfig(BaseModel):
    """The `[reports]` section of the alarm rule book."""

    model_config = ConfigDict(extra="forbid")

    closed_memory_days: float = Field(
        30.0,
        gt=0,
        description="closed reports are remembered this long (event clock) so late events "
        "for them are rejected as illegal rather than unknown",
    )
    open_memory_days: float = Field(
        365.0,
        gt=0,
        description="an open report with no event for this long (event clock) is forgotten, "
        "its SLA alarm cleared: state must not grow with reports nobody closes",
    )
