"""Transit logic: speed, bad fixes, overspeed alarms and 1-minute windows, per vehicle.

Pure: it takes validated positions and returns rows and alarm transitions. Each vehicle
has its own event clock (streams/windows.py): its fixes are held up to the allowed
lateness, released in event-time order (so derived speed, alarms and windows are the same
whatever order the feed delivered them in), and its windows close on its own clock. A
fix later than that corrects its window (a new version of the row) within the correction
horizon, and is returned as ``late`` beyond it. Corridor windows are not kept here: they
are the sum of the vehicle windows (a ClickHouse view over ``FINAL`` rows), so they are
corrected with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import inf
from sys import intern
from typing import Any

from schemas.insert_encoding import stored_time
from schemas.transit import Occupancy, Position, VehiclePosition
from streams.alarm_engine import AlarmEngine, Context
from streams.speed import Anchor, FixQuality, SpeedObservation, UnitWatch, observe
from streams.transit_state import (
    Fix,
    Outputs,
    PartitionState,
    TransitRules,
    VehicleAcc,
    VehicleState,
)
from streams.windows import Placement, Slot

__all__ = ["Outputs", "PartitionState", "TransitProcessor", "TransitRules"]
OVERSPEED = "overspeed"
# An interval longer than this says little about the time spent over the limit.
MAX_OVER_LIMIT_INTERVAL_S = 60.0
_MAX_ARRIVED = 1_000_000  # arrival observations kept for held fixes (a few per vehicle)


_OCCUPANCY: dict[Occupancy | None, str] = {None: "", **{o: o.value for o in Occupancy}}
_last_wall: list[tuple[float, float]] = [(0.0, 0.0)]


def _wall_time(wall: float) -> float:
    """The ingest time of a row: one wall time per batch, so converted once per batch."""
    last = _last_wall[0]
    if last[0] != wall:
        last = _last_wall[0] = (wall, stored_time(wall))
    return last[1]


def _position_row(vid: str, ts: float, f: Fix, speed: float | None, bad: bool) -> tuple[Any, ...]:
    return (vid, stored_time(ts), f.label, f.route_id, f.corridor, f.trip_id, f.lat, f.lon, f.bearing,
            f.reported_kmh, speed, f.occupancy, f.source, int(bad), _wall_time(f.ingested_at),
            f.kecamatan)  # fmt: skip


class TransitProcessor:
    """All transit state of one Kafka partition, kept per vehicle."""

    def __init__(self, rules: TransitRules, partition: int, state: PartitionState | None = None):
        self.rules = rules
        self.policy = rules.windows
        self.partition = partition
        self.state = state or PartitionState()
        self.alarms = AlarmEngine(rules.book, self.state.alarms)
        # Hot-path lookups, once per corridor or vehicle rather than once per fix.
        self._limits: dict[str, float] = {}
        self._alarm_keys: dict[str, str] = {}
        self._quiet: dict[float, float] = {}  # corridor limit → highest quiet speed
        # Per held fix (by identity): the arrival chain's anchor before it, its anchor and
        # observation after it, and the reported speed it was judged with. At release, if
        # the event-time chain stands on that same anchor (the feed was in order), the
        # observation is the same and is not made twice. Not checkpointed: a restored
        # fix is judged afresh.
        self._arrived: dict[int, tuple[Anchor | None, Anchor | None, SpeedObservation,
                                       float | None]] = {}  # fmt: skip

    def _limit(self, corridor: str) -> float:
        limit = self._limits.get(corridor)
        if limit is None:
            limit = self._limits[corridor] = self.rules.limit_for(corridor)
        return limit

    def _reported(self, fix: Fix, reported: float) -> float | None:
        """The reported speed, if it may stand for the fix's speed: not above the
        plausibility limit, and not from a source whose unit slipped (derived instead)."""
        if reported > self.rules.speed.max_plausible_kmh:
            return None
        watch = self.state.units.get(fix.source)
        return None if watch is not None and watch.verdict else reported

    def _watch_units(self, source: str, reported: float, derived: float, out: Outputs) -> None:
        watch = self.state.units.get(source)
        if watch is None:
            watch = self.state.units[source] = UnitWatch()
        if watch.add(reported, derived):
            out.unit_slips.append((source, watch.verdict))

    def apply(
        self,
        pos: VehiclePosition | Position,
        out: Outputs,
        wall: float,
        kecamatan: str = "",
        ts: float | None = None,
    ) -> bool:
        """Take one valid position (``ts``: its time, when the caller has it already);
        False when it is past the correction horizon (late)."""
        vid = pos.vehicle_id
        if ts is None:
            ts = pos.ts
        vehicle = self._vehicle(vid)
        fix = self._fix(pos, wall, kecamatan)
        if vehicle.held.is_late(ts):
            return self._late(vid, vehicle, ts, fix, wall, out)
        if not vehicle.held.add(ts, fix):
            out.duplicates += 1
            return True
        vehicle.windows.clock.observe(ts, wall)
        self._arrive(vid, vehicle, ts, fix, out)
        self.advance(vid, vehicle, wall, out)
        return True

    def apply_batch(
        self, items: Sequence[tuple[VehiclePosition | Position, float, str]], wall: float,
        out: Outputs,
    ) -> list[bool | Exception]:  # fmt: skip
        """Take a batch of valid positions (each with its time and kecamatan) in arrival
        order; per item, True when taken, False when late, or the exception it raised.

        Each vehicle's positions are taken together, in their arrival order. When they are
        all newer than anything the vehicle sent before, each newer than the last (a feed in
        order), they are held at once and released by one advance to the last watermark.
        That is what one advance per fix gives: along such a run the watermark only rises,
        so the same fixes are released in the same order, and none behind a window an
        earlier step would have closed. Otherwise they are taken one by one."""
        runs: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            vid = item[0].vehicle_id
            run = runs.get(vid)
            if run is None:
                runs[vid] = [i]
            else:
                run.append(i)
        results: list[bool | Exception] = [True] * len(items)
        for vid, run in runs.items():
            vehicle = self._vehicle(vid)
            if not self._in_order(vehicle, items, run):
                for i in run:
                    pos, ts, kecamatan = items[i]
                    try:
                        results[i] = self.apply(pos, out, wall, kecamatan, ts)
                    except Exception as exc:  # the caller dead-letters it
                        results[i] = exc
                continue
            held = vehicle.held
            fix = held.pending[-1][1] if held.pending else None
            taken: list[tuple[float, Fix]] = []
            for i in run:
                pos, ts, kecamatan = items[i]
                try:
                    fix = self._fix(pos, wall, kecamatan, fix)
                    taken.append((ts, fix))
                    self._arrive(vid, vehicle, ts, fix, out)
                except Exception as exc:
                    results[i] = exc
            try:
                held.extend(taken)
                if taken:
                    vehicle.windows.clock.observe(taken[-1][0], wall)
                self.advance(vid, vehicle, wall, out)
            except Exception as exc:  # what the last fix's own advance would have met
                results[run[-1]] = exc
        return results

    @staticmethod
    def _in_order(
        vehicle: VehicleState, items: Sequence[tuple[VehiclePosition | Position, float, str]],
        run: list[int],
    ) -> bool:  # fmt: skip
        last = vehicle.windows.clock.max_ts
        released = vehicle.held.released_until
        if last is None:
            last = -inf
        if released is not None and items[run[0]][1] < released:
            return False
        for i in run:
            ts = items[i][1]
            if ts <= last:
                return False
            last = ts
        return True

    def _vehicle(self, vid: str) -> VehicleState:
        vehicle = self.state.vehicles.get(vid)
        if vehicle is None:
            vehicle = self.state.vehicles[vid] = VehicleState()
        return vehicle

    @staticmethod
    def _fix(
        pos: VehiclePosition | Position, wall: float, kecamatan: str, like: Fix | None = None
    ) -> Fix:
        """The held fix of a position; ``like``: the vehicle's fix before it, whose strings
        it shares when they are the same (nearly always, within a vehicle's run)."""
        label, route_id, trip_id, source = pos.label, pos.route_id, pos.trip_id, pos.source
        corridor = pos.corridor or route_id or "unknown"
        occupancy = _OCCUPANCY[pos.occupancy]
        if like is not None and (corridor, label, route_id, trip_id, source) == (
            like.corridor, like.label, like.route_id, like.trip_id, like.source
        ):  # fmt: skip
            return Fix(pos.lat, pos.lon, like.corridor, pos.speed_kmh, wall, kecamatan,
                       like.label, like.route_id, like.trip_id, pos.bearing, occupancy,
                       like.source)  # fmt: skip
        # Held fixes repeat their vehicle's strings: one shared copy each keeps 10,000
        # vehicles' held fixes small.
        return Fix(pos.lat, pos.lon, intern(corridor), pos.speed_kmh, wall, kecamatan,
                   None if label is None else intern(label),
                   None if route_id is None else intern(route_id),
                   None if trip_id is None else intern(trip_id),
                   pos.bearing, occupancy, intern(source))  # fmt: skip

    def _arrive(self, vid: str, vehicle: VehicleState, ts: float, fix: Fix, out: Outputs) -> None:
        """The position is queryable at once; in an in-order feed this row is final."""
        reported = fix.reported_kmh
        if reported is not None:
            reported = self._reported(fix, reported)
        before = vehicle.arrival
        vehicle.arrival, first = observe(before, ts, fix.lat, fix.lon, reported, self.rules.speed)
        if len(self._arrived) >= _MAX_ARRIVED:
            self._arrived.clear()  # only a shortcut: a fix without one is judged afresh
        self._arrived[id(fix)] = (before, vehicle.arrival, first, reported)
        fix.speed_written, fix.bad_written = first.speed_kmh, first.quality is FixQuality.BAD
        out.positions.append(_position_row(vid, ts, fix, fix.speed_written, fix.bad_written))

    def _late(
        self, vid: str, vehicle: VehicleState, ts: float, fix: Fix, wall: float, out: Outputs
    ) -> bool:
        """Behind the released watermark: counted in its window (a correction), without a
        derived speed, since its neighbours were already judged without it."""
        placement, slot = self.policy.place(vehicle.windows, ts, wall, VehicleAcc)
        if placement is Placement.LATE:
            return False
        if placement is Placement.DUPLICATE or slot is None:
            out.duplicates += 1
            return True
        limit = self._limit(fix.corridor)
        slot.acc.corridor, slot.acc.limit_kmh = fix.corridor, limit
        slot.acc.positions += 1
        out.corrections += 1
        reported = fix.reported_kmh
        if reported is not None:
            reported = self._reported(fix, reported)
        out.positions.append(_position_row(vid, ts, fix, reported, False))
        self._emit_due(vid, vehicle, wall, out)
        return True

    def advance(self, vid: str, vehicle: VehicleState, wall: float, out: Outputs) -> None:
        """Release held fixes the vehicle's watermark has passed, in event-time order, then
        close and emit the windows it has passed."""
        wm = self.policy.watermark(vehicle.windows.clock, wall)
        released = vehicle.held.release(wm)
        if released:
            self._release(vid, vehicle, released, wall, out)
        # Releasing never moves the clock (released fixes are behind it): the same mark.
        self._emit(vid, self.policy.due_at(vehicle.windows, wm), out)

    def _release(
        self, vid: str, vehicle: VehicleState, released: list[tuple[float, Fix]], wall: float,
        out: Outputs,
    ) -> None:  # fmt: skip
        """Judge released fixes in event-time order: speed, bad fixes, alarms, windows."""
        slots = self.policy.place_released(vehicle.windows, released, wall, VehicleAcc)
        arrived, speed_rules = self._arrived, self.rules.speed
        max_plausible = speed_rules.max_plausible_kmh
        machines = self.alarms.state.machines
        key = self._alarm_keys.get(vid)
        if key is None:
            key = self._alarm_keys[vid] = f"{OVERSPEED}/{vid}"
        corridor: str | None = None
        limit = quiet = 0.0
        for (ts, fix), slot in zip(released, slots, strict=True):
            # Taken whatever happens to the fix: a memo left behind could be found again by
            # a later fix that happens to get the same id.
            memo = arrived.pop(id(fix), None)
            if slot is None:  # a duplicate, or its window is past the horizon
                out.duplicates += 1
                continue
            raw = reported = fix.reported_kmh
            if raw is not None:
                reported = self._reported(fix, raw)
                out.implausible_reported += raw > max_plausible
            if memo is not None and memo[0] is vehicle.anchor and memo[3] == reported:
                vehicle.anchor, obs = memo[1], memo[2]  # the same anchor and fix: the same answer
            else:
                vehicle.anchor, obs = observe(
                    vehicle.anchor, ts, fix.lat, fix.lon, reported, speed_rules
                )
            quality, speed = obs.quality, obs.speed_kmh
            if raw is not None and obs.derived_kmh is not None and quality is FixQuality.OK:
                self._watch_units(fix.source, raw, obs.derived_kmh, out)
            bad = quality is FixQuality.BAD
            if speed != fix.speed_written or bad != fix.bad_written:
                # It arrived out of order: event-time order corrects the row written at arrival.
                out.positions.append(_position_row(vid, ts, fix, speed, bad))
            if fix.corridor != corridor:
                corridor = fix.corridor
                limit = self._limit(corridor)
                cached = self._quiet.get(limit)
                if cached is None:
                    cached = self._quiet[limit] = self.alarms.quiet_up_to(OVERSPEED, limit)
                quiet = cached
            acc = slot.acc
            acc.corridor, acc.limit_kmh = fix.corridor, limit
            acc.positions += 1
            if bad or quality is FixQuality.STALE:
                # Counted as a position of the window, not as a speed sample.
                out.bad_fixes += bad
                out.stale += not bad
                continue
            if speed is None:
                continue
            if speed > quiet or key in machines:
                context: Context = {
                    "corridor": fix.corridor, "route_id": fix.route_id, "trip_id": fix.trip_id,
                    "lat": fix.lat, "lon": fix.lon, "limit_kmh": limit,
                    "kecamatan": fix.kecamatan or None,
                }  # fmt: skip
                out.alarms.extend(
                    self.alarms.observe(OVERSPEED, vid, ts, speed, context, base=limit)
                )
            acc.speed_samples += 1
            acc.speed_sum += speed
            if acc.max_speed is None or speed > acc.max_speed:
                acc.max_speed = speed
            if speed > limit and obs.interval_s is not None:
                acc.seconds_over += min(obs.interval_s, MAX_OVER_LIMIT_INTERVAL_S)

    def _emit_due(
        self, vid: str, vehicle: VehicleState, wall: float, out: Outputs, force: bool = False
    ) -> None:
        self._emit(vid, self.policy.due(vehicle.windows, wall, force), out)

    @staticmethod
    def _emit(vid: str, due: list[tuple[int, Slot[VehicleAcc]]], out: Outputs) -> None:
        for start, slot in due:
            v = slot.acc
            mean = v.speed_sum / v.speed_samples if v.speed_samples else None
            row = (vid, start, v.corridor, v.positions, v.speed_samples, mean, v.max_speed,
                   v.seconds_over, v.limit_kmh, slot.version)  # fmt: skip
            out.vehicle_windows.append(row)

    def tick(self, wall: float, out: Outputs) -> None:
        """Every vehicle on its own clock: release, close quiet windows, clear alarms of
        silent vehicles, and evict vehicles quiet past the eviction time."""
        machines = self.alarms.state.machines
        for vid, vehicle in list(self.state.vehicles.items()):
            clock = vehicle.windows.clock
            if clock.idle_s(wall) >= self.rules.evict_after_s:
                self.evict(vid, wall, out)
                continue
            self.advance(vid, vehicle, wall, out)
            key = f"{OVERSPEED}/{vid}"
            now = clock.now(wall)
            if now is not None and key in machines:  # most vehicles have no alarm machine
                out.alarms.extend(self.alarms.sweep(now, [key]))

    def evict(self, vid: str, wall: float, out: Outputs) -> None:
        """Write everything the vehicle holds, then forget it."""
        vehicle = self.state.vehicles[vid]
        self._release_all(vid, vehicle, wall, out)
        now = vehicle.windows.clock.now(wall)
        if now is not None:
            out.alarms.extend(self.alarms.sweep(now, [f"{OVERSPEED}/{vid}"]))
        self.alarms.drop_pending(OVERSPEED, vid)
        del self.state.vehicles[vid]
        self._alarm_keys.pop(vid, None)
        out.evicted += 1

    def flush(self, wall: float, out: Outputs) -> None:
        """Release and close everything (the end of a finite replay, and tests)."""
        for vid, vehicle in self.state.vehicles.items():
            self._release_all(vid, vehicle, wall, out)

    def _release_all(self, vid: str, vehicle: VehicleState, wall: float, out: Outputs) -> None:
        released = vehicle.held.release(None, force=True)
        if released:
            self._release(vid, vehicle, released, wall, out)
        self._emit_due(vid, vehicle, wall, out, force=True)
