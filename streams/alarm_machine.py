"""A threshold alarm with a minimum duration, hysteresis and one alarm per episode.

Feed it samples of one entity in event-time order. It raises only after the value has
stayed above the threshold for ``min_duration_s`` (a single spike is not an episode),
stays open while the value hovers near the threshold, and clears only after the value has
stayed below ``threshold - clear_hysteresis`` for ``clear_duration_s``. While open, it
reports ``updated`` when the worst value grows by ``update_step`` or the severity rises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from schemas.alarms import Alarm, AlarmState, Severity, alarm_id


class Phase(StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(frozen=True)
class ThresholdRules:
    kind: str
    min_duration_s: float = 15.0
    clear_hysteresis: float = 5.0
    clear_duration_s: float = 15.0
    critical_excess: float = 20.0
    update_step: float = 5.0
    # An open alarm whose entity goes silent this long is cleared at its last sample.
    max_silence_s: float = 300.0


@dataclass
class ThresholdState:
    phase: Phase = Phase.IDLE
    since: float = 0.0  # start of the pending run / the episode
    worst: float = 0.0
    reported_worst: float = 0.0
    severity: Severity = Severity.WARNING
    below_since: float | None = None
    last_ts: float = 0.0
    threshold: float = 0.0
    version: int = 0
    context: dict[str, str | float | int | None] = field(default_factory=dict)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _severity(worst: float, threshold: float, rules: ThresholdRules) -> Severity:
    return Severity.CRITICAL if worst >= threshold + rules.critical_excess else Severity.WARNING


def _emit(
    st: ThresholdState, rules: ThresholdRules, entity: str, state: AlarmState, ts: float
) -> Alarm:
    st.version += 1
    started = _dt(st.since)
    return Alarm(
        id=alarm_id(rules.kind, entity, started),
        kind=rules.kind,
        entity=entity,
        severity=st.severity,
        state=state,
        started_at=started,
        last_seen=_dt(ts),
        cleared_at=_dt(ts) if state is AlarmState.CLEARED else None,
        value=round(st.worst, 2),
        threshold=st.threshold,
        version=st.version,
        context=dict(st.context),
    )


def step(
    st: ThresholdState,
    rules: ThresholdRules,
    entity: str,
    ts: float,
    value: float,
    threshold: float,
    context: dict[str, str | float | int | None] | None = None,
) -> list[Alarm]:
    """Advance one entity's alarm with one sample; return the transitions it caused."""
    out: list[Alarm] = []
    if st.phase is Phase.ACTIVE and ts - st.last_ts > rules.max_silence_s:
        out.append(_emit(st, rules, entity, AlarmState.CLEARED, st.last_ts))
        st.phase = Phase.IDLE
    if ts < st.last_ts:
        return out
    st.last_ts = ts

    if st.phase is Phase.IDLE:
        if value > threshold:
            st.phase, st.since, st.worst, st.threshold = Phase.PENDING, ts, value, threshold
    elif st.phase is Phase.PENDING:
        if value <= threshold:
            st.phase = Phase.IDLE
        else:
            st.worst = max(st.worst, value)
            if ts - st.since >= rules.min_duration_s:
                st.phase = Phase.ACTIVE
                st.version = 0
                st.threshold = threshold
                st.context = dict(context or {})
                st.severity = _severity(st.worst, threshold, rules)
                st.reported_worst = st.worst
                st.below_since = None
                out.append(_emit(st, rules, entity, AlarmState.RAISED, ts))
    else:  # ACTIVE
        if value < st.threshold - rules.clear_hysteresis:
            if st.below_since is None:
                st.below_since = ts
            if ts - st.below_since >= rules.clear_duration_s:
                out.append(_emit(st, rules, entity, AlarmState.CLEARED, ts))
                st.phase = Phase.IDLE
        else:
            st.below_since = None
            st.worst = max(st.worst, value)
            severity = _severity(st.worst, st.threshold, rules)
            if severity != st.severity or st.worst >= st.reported_worst + rules.update_step:
                st.severity = severity
                st.reported_worst = st.worst
                out.append(_emit(st, rules, entity, AlarmState.UPDATED, ts))
    return out
