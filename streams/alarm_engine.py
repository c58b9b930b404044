"""The alarm engine every domain uses: one state machine per dedup key (kind/entity).

A rule (from the TOML rule book) gives a ladder of levels, each with a raise and a clear
threshold (hysteresis), a minimum duration before raising or escalating, a duration below
a clear threshold before de-escalating or clearing, a re-notify interval, and a silence
timeout. Feed samples in event-time order; every transition comes back as an
:class:`Alarm` record. People acknowledge or clear alarms with commands. The state is
plain data, checkpointed with the rest of a partition's state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import inf

from schemas.alarm_rules import Direction, Rule, RuleBook
from schemas.alarms import (
    Alarm,
    AlarmCommand,
    AlarmState,
    CommandAction,
    Reason,
    alarm_id,
    alarm_key,
)
from schemas.catalog import ALARM_OWNERS, may_act_on

log = logging.getLogger(__name__)

Context = dict[str, str | float | int | bool | None]
Thresholds = Sequence[tuple[float, float]]  # (raise, clear) per level, least severe first
# A pending condition (crossed, not yet for the minimum duration) whose entity then says
# nothing for this long is forgotten, unless the rule's own silence limit says otherwise:
# nobody knows whether the condition held through the gap, and a machine per entity that
# once crossed a threshold would otherwise stay in state for ever.
PENDING_GAP_S = 6 * 3600.0


def pending_gap(rule: Rule) -> float:
    """The gap between samples after which a pending condition starts over."""
    return max(rule.min_duration_s, rule.max_silence_s or PENDING_GAP_S)


@dataclass
class Machine:
    level: int = 0  # 0: normal; k: the rule's k-th level
    pending_since: float | None = None
    below_since: float | None = None
    started: float = 0.0
    worst: float = 0.0
    reported_worst: float = 0.0
    last_ts: float = 0.0
    last_notified: float = 0.0
    version: int = 0
    acked_by: str | None = None
    acked_at: float | None = None
    thresholds: list[tuple[float, float]] = field(default_factory=list)
    context: Context = field(default_factory=dict)


@dataclass
class EngineState:
    machines: dict[str, Machine] = field(default_factory=dict)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class ForbiddenCommand(Exception):
    """A command its sender's department may not give; the message says who and why."""


class AlarmEngine:
    def __init__(self, book: RuleBook, state: EngineState | None = None) -> None:
        self.book = book
        self.state = state if state is not None else EngineState()
        self._lowest: dict[tuple[str, float], tuple[float, float]] = {}  # → (sign, lowest)
        self._levels: dict[tuple[str, float], list[tuple[float, float]]] = {}
        self._drop_unknown_kinds()

    def _drop_unknown_kinds(self) -> None:
        """Saved machines of a kind the rule book no longer has are dropped when the state
        loads: no rule says how to advance or clear them, and every later sweep or command
        would fail on them."""
        kinds = {r.kind for r in self.book.rules}
        for key in [k for k in self.state.machines if k.split("/", 1)[0] not in kinds]:
            m = self.state.machines.pop(key)
            kind, entity = key.split("/", 1)
            log.warning(
                "alarm state dropped: its rule is no longer in the rule book",
                extra={"kind": kind, "entity": entity, "alarm_level": m.level},
            )

    def _thresholds(
        self, rule: Rule, override: Thresholds | None, base: float
    ) -> list[tuple[float, float]]:
        if override is not None:
            if len(override) != len(rule.levels):
                raise ValueError(
                    f"{rule.kind}: {len(rule.levels)} levels, got {len(override)} thresholds"
                )
            return [(float(r) + base, float(c) + base) for r, c in override]
        # A rule's levels at a base (a corridor's limit), once: the hot path asks per sample.
        levels = self._levels.get((rule.kind, base))
        if levels is None:
            levels = [(lv.raise_at + base, lv.clear_at + base) for lv in rule.levels]
            self._levels[(rule.kind, base)] = levels
        return levels

    def _emit(self, rule: Rule, entity: str, m: Machine, state: AlarmState, reason: Reason,
              ts: float, cleared_by: str | None = None) -> Alarm:  # fmt: skip
        m.version += 1
        m.last_notified = ts
        m.reported_worst = m.worst
        index = max(m.level, 1) - 1
        started = _dt(m.started)
        return Alarm(
            id=alarm_id(rule.kind, entity, started),
            kind=rule.kind,
            domain=rule.domain,
            entity=entity,
            severity=rule.levels[index].severity,
            level=rule.levels[index].name if state is not AlarmState.CLEARED else "normal",
            state=state,
            reason=reason,
            started_at=started,
            last_seen=_dt(m.last_ts),
            cleared_at=_dt(ts) if state is AlarmState.CLEARED else None,
            value=round(m.worst, 3),
            threshold=m.thresholds[index][0] if m.thresholds else rule.levels[index].raise_at,
            version=m.version,
            acknowledged_by=m.acked_by,
            acknowledged_at=_dt(m.acked_at) if m.acked_at is not None else None,
            cleared_by=cleared_by,
            context=dict(m.context),
        )

    @staticmethod
    def _reset(m: Machine) -> None:
        m.level, m.pending_since, m.below_since = 0, None, None
        m.acked_by = m.acked_at = None

    def observe(
        self,
        kind: str,
        entity: str,
        ts: float,
        value: float,
        context: Context | None = None,
        thresholds: Thresholds | None = None,
        base: float = 0.0,
        stands_for_s: float = 0.0,
    ) -> list[Alarm]:
        """Advance the alarm of (kind, entity) with one sample; return its transitions.

        ``thresholds`` replaces the rule's (an entity with its own bands, e.g. a gauge);
        ``base`` shifts them (a rule written relative to a per-entity limit);
        ``stands_for_s``: how long one sample stands for (a gauge's cadence); a source
        whose samples are further apart than the rule's raise or clear duration meets it
        with one sample, so an hourly gauge is not an hour late.
        """
        key = f"{kind}/{entity}"
        if self.idle(kind, entity, value, thresholds, base, key):
            return []
        rule = self.book.rule(kind)
        m = self.state.machines.get(key)
        if m is None:
            m = self.state.machines[key] = Machine()
        out: list[Alarm] = []
        if m.level and rule.max_silence_s and ts - m.last_ts > rule.max_silence_s:
            out.append(self._emit(rule, entity, m, AlarmState.CLEARED, Reason.SILENCE, m.last_ts))
            self._reset(m)
        if ts < m.last_ts:
            return out
        if not m.level and m.pending_since is not None and ts - m.last_ts > pending_gap(rule):
            m.pending_since = None  # the same rule as the sweep's pruning, so both agree
        m.last_ts = ts
        sign = 1.0 if rule.direction is Direction.ABOVE else -1.0
        levels = m.thresholds if m.level else self._thresholds(rule, thresholds, base)
        up = max((k for k, (r, _) in enumerate(levels, 1) if sign * (value - r) > 0), default=0)

        if up > m.level:
            m.below_since = None
            if m.pending_since is None:
                m.pending_since = ts
                if not m.level:
                    m.worst = value
            m.worst = value if sign * (value - m.worst) > 0 else m.worst
            # A source that samples less often than the duration confirms with one sample
            # (its next comes a cadence later); a faster one is measured by its samples.
            credit = stands_for_s if stands_for_s >= rule.min_duration_s else 0.0
            if ts + credit - m.pending_since >= rule.min_duration_s:
                if not m.level:
                    m.started, m.thresholds, m.version = m.pending_since, list(levels), 0
                    m.context = dict(context or {})
                    m.level = up
                    out.append(self._emit(rule, entity, m, AlarmState.RAISED, Reason.RAISED, ts))
                else:
                    m.level = up
                    out.append(
                        self._emit(rule, entity, m, AlarmState.UPDATED, Reason.ESCALATED, ts)
                    )
                m.pending_since = None
            return out
        m.pending_since = None
        if not m.level:
            return out
        m.worst = value if sign * (value - m.worst) > 0 else m.worst
        hold = max(
            (k for k in range(1, m.level + 1) if sign * (value - levels[k - 1][1]) >= 0), default=0
        )
        if hold < m.level:
            if m.below_since is None:
                m.below_since = ts
            credit = stands_for_s if stands_for_s >= rule.clear_duration_s else 0.0
            if ts + credit - m.below_since >= rule.clear_duration_s:
                m.below_since = None
                if hold == 0:
                    out.append(
                        self._emit(rule, entity, m, AlarmState.CLEARED, Reason.RECOVERED, ts)
                    )
                    self._reset(m)
                    return out
                m.level = hold
                out.append(self._emit(rule, entity, m, AlarmState.UPDATED, Reason.DEESCALATED, ts))
                return out
        else:
            m.below_since = None
        if rule.worsen_step and sign * (m.worst - m.reported_worst) >= rule.worsen_step:
            out.append(self._emit(rule, entity, m, AlarmState.UPDATED, Reason.WORSENED, ts))
        elif rule.renotify_s and m.acked_by is None and ts - m.last_notified >= rule.renotify_s:
            out.append(self._emit(rule, entity, m, AlarmState.UPDATED, Reason.RENOTIFY, ts))
        return out

    def idle(
        self,
        kind: str,
        entity: str,
        value: float,
        thresholds: Thresholds | None = None,
        base: float = 0.0,
        key: str | None = None,
    ) -> bool:
        """True when ``observe`` would do nothing: a normal sample of an entity with no alarm
        machine. Most samples are normal; keeping no machine for them keeps state small
        (10,000 buses) and lets a caller skip building the alarm's context. ``key``: the
        machine key ``kind/entity``, when a hot caller keeps it rather than build it per
        sample."""
        key = key or f"{kind}/{entity}"
        if thresholds is not None:
            if key in self.state.machines:
                return False
            rule = self.book.rule(kind)
            sign = 1.0 if rule.direction is Direction.ABOVE else -1.0
            return not any(
                sign * (value - r) > 0 for r, _ in self._thresholds(rule, thresholds, base)
            )
        sign, lowest = self._lowest_raise(kind, base)
        # A sample past the lowest threshold is never idle, machine or not.
        return not sign * value > lowest and key not in self.state.machines

    def _lowest_raise(self, kind: str, base: float) -> tuple[float, float]:
        # The lowest raise threshold of a rule at a base, once: most calls come from the hot
        # path of a vehicle stream, a few bases (corridor limits) for all of them.
        cached = self._lowest.get((kind, base))
        if cached is None:
            rule = self.book.rule(kind)
            sign = 1.0 if rule.direction is Direction.ABOVE else -1.0
            levels = self._thresholds(rule, None, base)
            cached = self._lowest[(kind, base)] = (
                sign, min((sign * r for r, _ in levels), default=inf))  # fmt: skip
        return cached

    def quiet_up_to(self, kind: str, base: float = 0.0) -> float:
        """For a rule that raises above its thresholds, the highest value that is
        :meth:`idle` for an entity with no machine, so a hot caller can skip the call for
        most samples (-inf for a rule that raises below: no such shortcut)."""
        sign, lowest = self._lowest_raise(kind, base)
        return lowest if sign > 0 else -inf

    def sweep(self, now_ts: float, keys: Sequence[str] | None = None) -> list[Alarm]:
        """Clear open alarms whose entity has been silent past the rule's limit; forget idle
        keys and pending conditions older than :func:`pending_gap`. ``keys`` limits the sweep
        to some machines (one entity judged on its own clock)."""
        out: list[Alarm] = []
        for key in list(self.state.machines) if keys is None else keys:
            m = self.state.machines.get(key)
            if m is None:
                continue
            kind, entity = key.split("/", 1)
            rule = self.book.rule(kind)
            if m.level and rule.max_silence_s and now_ts - m.last_ts > rule.max_silence_s:
                out.append(
                    self._emit(rule, entity, m, AlarmState.CLEARED, Reason.SILENCE, m.last_ts)
                )
                self._reset(m)
            if (
                not m.level
                and m.pending_since is not None
                and now_ts - m.last_ts > pending_gap(rule)
            ):
                m.pending_since = None
            if not m.level and m.pending_since is None:
                del self.state.machines[key]
        return out

    def entities(self, kinds: Sequence[str]) -> set[str]:
        """Entities holding a machine of one of ``kinds`` (e.g. to find registry drift)."""
        wanted = set(kinds)
        return {k.split("/", 1)[1] for k in self.state.machines if k.split("/", 1)[0] in wanted}

    def drop_pending(self, kind: str, entity: str) -> None:
        """Forget (kind, entity) unless it holds an alarm open: an evicted entity's pending
        condition can never finish, while an open alarm must still be cleared."""
        m = self.state.machines.get(f"{kind}/{entity}")
        if m is not None and not m.level:
            del self.state.machines[f"{kind}/{entity}"]

    def forget(self, kind: str, entity: str, ts: float, reason: Reason) -> list[Alarm]:
        """Stop tracking (kind, entity), e.g. an entity dropped from state; an open alarm is
        cleared first with ``reason`` at ``ts`` so the room does not keep it open for ever."""
        m = self.state.machines.pop(f"{kind}/{entity}", None)
        if m is None or not m.level:
            return []
        at = max(ts, m.last_ts)
        return [self._emit(self.book.rule(kind), entity, m, AlarmState.CLEARED, reason, at)]

    def forget_entity(self, kinds: Sequence[str], entity: str, ts: float | None = None,
                      reason: Reason = Reason.SILENCE) -> list[Alarm]:  # fmt: skip
        """Stop tracking every alarm of an entity dropped from state (e.g. taken out of its
        registry): nothing could judge or clear them again, so open ones are cleared, at
        ``ts`` or else at their last sample, rather than left open in the room for ever."""
        out: list[Alarm] = []
        for kind in kinds:
            m = self.state.machines.get(f"{kind}/{entity}")
            if m is not None:
                out.extend(self.forget(kind, entity, m.last_ts if ts is None else ts, reason))
        return out

    def command(self, cmd: AlarmCommand) -> list[Alarm]:
        """Apply a person's acknowledge or clear; a no-op unless this engine holds that alarm
        open. Raises :class:`ForbiddenCommand` when it does and the person's department does
        not own the alarm's domain: the API checked that too, but this is the authority."""
        key = alarm_key(cmd.alarm_id)
        m = self.state.machines.get(key)
        if m is None or not m.level:
            return []
        kind, entity = key.split("/", 1)
        rule = self.book.rule(kind)
        if alarm_id(kind, entity, _dt(m.started)) != cmd.alarm_id:
            return []
        if not may_act_on(rule.domain, cmd.department):
            raise ForbiddenCommand(
                f"{cmd.by} of {cmd.department} may not {cmd.action.value} a {rule.domain} "
                f"alarm ({cmd.alarm_id}); its owners: "
                + (", ".join(ALARM_OWNERS.get(rule.domain, ())) or "the room")
            )
        at = cmd.at.timestamp()
        if cmd.action is CommandAction.ACKNOWLEDGE:
            if m.acked_by is not None:
                return []
            m.acked_by, m.acked_at = cmd.by, at
            if cmd.note:
                m.context["ack_note"] = cmd.note
            return [self._emit(rule, entity, m, AlarmState.ACKNOWLEDGED, Reason.ACKNOWLEDGED, at)]
        if cmd.note:
            m.context["clear_note"] = cmd.note
        alarm = self._emit(
            rule, entity, m, AlarmState.CLEARED, Reason.MANUAL_CLEAR, at, cleared_by=cmd.by
        )
        self._reset(m)
        return [alarm]

    def open_alarm_ids(self) -> list[str]:
        out = []
        for key, m in self.state.machines.items():
            if m.level:
                kind, entity = key.split("/", 1)
                out.append(alarm_id(kind, entity, _dt(m.started)))
        return out
