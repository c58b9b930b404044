from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from schemas.alarm_rules import RuleBook, RuleBookError, load_rules
from schemas.alarms import AlarmCommand, AlarmState, CommandAction, Reason, Severity
from streams.alarm_engine import AlarmEngine, EngineState

BOOK = RuleBook.model_validate(
    {
        "rule": [
            {
                "kind": "speed", "domain": "transit", "min_duration_s": 15, "clear_duration_s": 15,
                "max_silence_s": 300, "worsen_step": 5,
                "level": [
                    {"name": "over", "severity": "warning", "raise": 60, "clear": 55},
                    {"name": "far over", "severity": "critical", "raise": 80, "clear": 75},
                ],
            },
            {
                "kind": "river", "domain": "flood", "min_duration_s": 0, "clear_duration_s": 60,
                "renotify_s": 600,
                "level": [
                    {"name": "waspada", "severity": "warning", "raise": 100, "clear": 95},
                    {"name": "siaga", "severity": "major", "raise": 150, "clear": 145},
                    {"name": "awas", "severity": "critical", "raise": 200, "clear": 195},
                ],
            },
            {
                "kind": "jam", "domain": "traffic", "direction": "below",
                "level": [{"name": "heavy", "severity": "warning", "raise": 20, "clear": 25}],
            },
        ]
    }
)  # fmt: skip


def run(kind: str, samples: Sequence[tuple[float, float]], engine: AlarmEngine | None = None, **kw):  # type: ignore[no-untyped-def]
    engine = engine or AlarmEngine(BOOK)
    out = []
    for ts, value in samples:
        out.extend(engine.observe(kind, "e1", ts, value, {"corridor": "K1"}, **kw))
    return engine, out


def test_a_short_spike_raises_nothing() -> None:
    _, out = run("speed", [(0, 40), (5, 70), (10, 75), (15, 40), (20, 40)])
    assert out == []


def test_raises_once_after_the_minimum_duration() -> None:
    _, out = run("speed", [(0, 40), (5, 70), (10, 71), (15, 72), (20, 72), (25, 72)])
    assert [(a.state, a.reason) for a in out] == [(AlarmState.RAISED, Reason.RAISED)]
    a = out[0]
    assert a.started_at.timestamp() == 5 and a.last_seen.timestamp() == 20
    assert (a.threshold, a.value, a.severity, a.level) == (60, 72, Severity.WARNING, "over")
    assert a.id == "speed/e1/5000" and a.domain == "transit" and a.context == {"corridor": "K1"}


def test_hysteresis_keeps_one_alarm_per_episode() -> None:
    samples = [(t, 70.0) for t in range(0, 25, 5)]
    samples += [(25 + i * 5, 57.0 if i % 2 else 62.0) for i in range(20)]
    _, out = run("speed", samples)
    assert [a.state for a in out] == [AlarmState.RAISED]


def test_clears_after_staying_below_the_clear_threshold() -> None:
    samples = [(t, 70.0) for t in range(0, 25, 5)] + [(t, 40.0) for t in range(25, 60, 5)]
    _, out = run("speed", samples)
    assert [(a.state, a.reason) for a in out] == [
        (AlarmState.RAISED, Reason.RAISED), (AlarmState.CLEARED, Reason.RECOVERED)
    ]  # fmt: skip
    assert out[-1].id == out[0].id and out[-1].version == 2
    assert out[-1].cleared_at is not None and out[-1].cleared_at.timestamp() == 40


def test_two_episodes_two_alarms() -> None:
    episode = [(t, 70.0) for t in range(0, 25, 5)] + [(t, 30.0) for t in range(25, 60, 5)]
    _, out = run("speed", episode + [(t + 100, v) for t, v in episode])
    raised = [a for a in out if a.state is AlarmState.RAISED]
    assert len(raised) == 2 and raised[0].id != raised[1].id


def test_escalation_worsening_and_deescalation() -> None:
    _, out = run(
        "river",
        [
            (0, 120),
            (60, 160),
            (120, 170),
            (180, 210),
            (240, 190),
            (300, 190),
            (360, 120),
            (420, 120),
            (480, 50),
            (540, 50),
        ],
    )
    steps = [(a.state, a.reason, a.level, a.severity) for a in out]
    assert steps == [
        (AlarmState.RAISED, Reason.RAISED, "waspada", Severity.WARNING),
        (AlarmState.UPDATED, Reason.ESCALATED, "siaga", Severity.MAJOR),
        (AlarmState.UPDATED, Reason.ESCALATED, "awas", Severity.CRITICAL),
        (AlarmState.UPDATED, Reason.DEESCALATED, "siaga", Severity.MAJOR),
        (AlarmState.UPDATED, Reason.DEESCALATED, "waspada", Severity.WARNING),
        (AlarmState.CLEARED, Reason.RECOVERED, "normal", Severity.WARNING),
    ]  # fmt: skip
    assert len({a.id for a in out}) == 1 and out[-1].value == 210


def test_per_entity_thresholds_and_base() -> None:
    _, out = run("river", [(0, 60)], thresholds=[(50, 45), (70, 65), (90, 85)])
    assert out[0].threshold == 50 and out[0].level == "waspada"
    _, out = run("speed", [(0, 75), (20, 75)], base=10.0)  # limit 70 → raise above 70
    assert out[0].threshold == 70
    with pytest.raises(ValueError):
        run("river", [(0, 60)], thresholds=[(50, 45)])


def test_renotify_until_acknowledged() -> None:
    engine, out = run("river", [(0, 120), (300, 120), (600, 120), (900, 120), (1200, 120)])
    assert [a.reason for a in out] == [Reason.RAISED, Reason.RENOTIFY, Reason.RENOTIFY]
    ack = AlarmCommand(
        alarm_id=out[0].id,
        action=CommandAction.ACKNOWLEDGE,
        by="ops-1",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    acked = engine.command(ack)
    assert [(a.state, a.acknowledged_by) for a in acked] == [(AlarmState.ACKNOWLEDGED, "ops-1")]
    assert engine.command(ack) == []  # twice changes nothing
    _, later = run("river", [(1800, 120), (2400, 120)], engine)
    assert later == []  # acknowledged alarms are not re-notified


def test_manual_clear_ends_the_episode_and_a_persisting_condition_starts_a_new_one() -> None:
    engine, out = run("river", [(0, 120)])
    cmd = AlarmCommand(
        alarm_id=out[0].id,
        action=CommandAction.CLEAR,
        by="ops-2",
        note="sensor fouled",
        at=datetime.fromtimestamp(30, UTC),
    )
    cleared = engine.command(cmd)
    assert [(a.state, a.reason, a.cleared_by) for a in cleared] == [
        (AlarmState.CLEARED, Reason.MANUAL_CLEAR, "ops-2")
    ]
    assert cleared[0].context["clear_note"] == "sensor fouled"
    assert engine.command(cmd) == []
    _, again = run("river", [(60, 120)], engine)
    assert again[0].state is AlarmState.RAISED and again[0].id != out[0].id


def test_commands_for_unknown_alarms_are_ignored() -> None:
    engine = AlarmEngine(BOOK)
    cmd = AlarmCommand(
        alarm_id="river/e9/0", action=CommandAction.CLEAR, by="x", at=datetime.now(UTC)
    )
    assert engine.command(cmd) == []


def test_below_direction() -> None:
    _, out = run("jam", [(0, 30), (60, 15), (120, 22), (180, 30)])
    assert [a.state for a in out] == [AlarmState.RAISED, AlarmState.CLEARED] and out[0].value == 15


def test_silence_clears_and_sweep_forgets_idle_keys() -> None:
    engine, _ = run("speed", [(t, 70.0) for t in range(0, 25, 5)])
    assert engine.sweep(100.0) == []
    swept = engine.sweep(1000.0)
    assert [(a.state, a.reason) for a in swept] == [(AlarmState.CLEARED, Reason.SILENCE)]
    assert swept[0].cleared_at is not None and swept[0].cleared_at.timestamp() == 20
    assert engine.state.machines == {}


def test_state_round_trips_through_a_checkpoint() -> None:
    import msgspec

    engine, _ = run("river", [(0, 160)])
    restored = AlarmEngine(
        BOOK, msgspec.json.decode(msgspec.json.encode(engine.state), type=EngineState)
    )
    _, out = run("river", [(60, 10), (120, 10)], restored)
    assert [a.reason for a in out] == [Reason.RECOVERED]


def test_the_rule_file_is_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert load_rules().rule("overspeed").levels[0].severity is Severity.WARNING
    bad = tmp_path / "rules.toml"
    bad.write_text(
        '[[rule]]\nkind="x"\ndomain="d"\n[[rule.level]]\nname="a"\nseverity="warning"\nraise=10\nclear=20\n'
    )
    with pytest.raises(RuleBookError, match="hysteresis"):
        load_rules(bad)
    bad.write_text("not toml [")
    with pytest.raises(RuleBookError, match=str(bad)):
        load_rules(bad)


def _book_error(tmp_path, text: str) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleBookError) as info:
        load_rules(path)
    assert "\n" not in str(info.value)  # one line for the command line to print
    return str(info.value)


LEVEL = '[[rule.level]]\nname="{n}"\nseverity="warning"\nraise={r}\nclear={c}\n'
RULE = '[[rule]]\nkind="x"\ndomain="d"\ndirection="{d}"\n'


@pytest.mark.parametrize(
    ("direction", "levels", "match"),
    [
        # raise thresholds not getting worse in the rule's direction
        ("above", [(10, 5), (10, 8)], "levels must get worse"),
        ("above", [(20, 15), (10, 5)], "levels must get worse"),
        ("below", [(10, 15), (20, 25)], "levels must get worse"),
        # a clear on the unsafe side of its raise
        ("below", [(10, 5)], "hysteresis"),
        # clears inverted against the ladder: the higher level would outlast the lower one
        ("above", [(10, 8), (20, 5)], "clear thresholds must get worse"),
        ("below", [(10, 12), (5, 20)], "clear thresholds must get worse"),
    ],
)
def test_inverted_ladders_stop_the_start(tmp_path, direction, levels, match) -> None:  # type: ignore[no-untyped-def]
    text = RULE.format(d=direction) + "".join(
        LEVEL.format(n=f"l{i}", r=r, c=c) for i, (r, c) in enumerate(levels)
    )
    assert match in _book_error(tmp_path, text)


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("[sources.silent_after_s]\ngtfs-rt = 0\n", "sources.silent_after_s.gtfs-rt"),
        ("[sources]\ndefault_silent_after_s = 0\n", "sources.default_silent_after_s"),
        ("[transit.limits_kmh]\nK1 = 0\n", "transit.limits_kmh.K1"),
        ("[traffic]\nwindow_s = 0\n", "traffic.window_s"),
        ("[traffic]\ncongestion_bands = [0.25, 0.5, 0.75]\n", "strictly decreasing"),
        ("[flood]\nreport_bands_cm = [30.0, 10.0, 70.0]\n", "strictly increasing"),
        ("[flood]\nrise_window_min = 0\n", "flood.rise_window_min"),
        ("[prices]\nmedian_days = 3\nmin_median_days = 5\n", "min_median_days"),
    ],
)
def test_zero_divisors_and_inverted_bands_stop_the_start(tmp_path, section, where) -> None:  # type: ignore[no-untyped-def]
    text = section + RULE.format(d="above") + LEVEL.format(n="a", r=10, c=5)
    assert where in _book_error(tmp_path, text)


def test_nan_thresholds_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = RULE.format(d="above") + LEVEL.format(n="a", r="nan", c=5)
    assert "rule.0.level.0.raise" in _book_error(tmp_path, text)


def test_the_shipped_rule_book_passes_its_own_checks() -> None:
    book = load_rules()
    assert book.sources.limit_for("report-import") > 0


def test_saved_machines_of_a_kind_removed_from_the_book_are_dropped_on_load(caplog) -> None:  # type: ignore[no-untyped-def]
    import msgspec

    engine, out = run("river", [(0, 160)])
    run("speed", [(0, 90)], engine)  # pending, not raised yet
    saved = msgspec.json.encode(engine.state)
    without_river = RuleBook.model_validate(
        {"rule": [r.model_dump(by_alias=True) for r in BOOK.rules if r.kind != "river"]}
    )
    with caplog.at_level("WARNING", logger="streams.alarm_engine"):
        restored = AlarmEngine(without_river, msgspec.json.decode(saved, type=EngineState))
    assert list(restored.state.machines) == ["speed/e1"]
    dropped = [r for r in caplog.records if "no longer in the rule book" in r.getMessage()]
    assert [(r.kind, r.entity) for r in dropped] == [("river", "e1")]  # type: ignore[attr-defined]
    # Sweeps and commands no longer meet a kind the book does not know.
    assert restored.sweep(10.0) == []
    cmd = AlarmCommand(alarm_id=out[0].id, action=CommandAction.CLEAR, by="x", at=datetime.now(UTC))
    assert restored.command(cmd) == []


def test_a_pending_condition_is_forgotten_after_a_long_gap() -> None:
    # speed: min 15 s, silence 300 s. Crossed at 0, then nothing for 10 minutes.
    engine, out = run("speed", [(0, 90)])
    assert out == [] and engine.state.machines["speed/e1"].pending_since == 0
    assert engine.sweep(250.0) == [] and "speed/e1" in engine.state.machines
    engine.sweep(301.0)
    assert engine.state.machines == {}
    # Without the sweep, a sample after the gap gives the same answer: pending starts over.
    unswept, out = run("speed", [(0, 90), (600, 90)])
    assert out == [] and unswept.state.machines["speed/e1"].pending_since == 600
    swept, _ = run("speed", [(0, 90)])
    swept.sweep(400.0)
    _, out = run("speed", [(600, 90)], swept)
    assert out == [] and swept.state.machines["speed/e1"].pending_since == 600
    # A gap within the bound still raises, started where the condition began.
    _, out = run("speed", [(0, 90), (200, 90)])
    assert [a.state for a in out] == [AlarmState.RAISED] and out[0].started_at.timestamp() == 0


def test_a_pending_condition_without_a_silence_limit_uses_the_default_gap() -> None:
    from streams.alarm_engine import PENDING_GAP_S

    book = RuleBook.model_validate(
        {"rule": [{"kind": "lvl", "domain": "flood", "min_duration_s": 120,
                   "level": [{"name": "a", "severity": "warning", "raise": 10, "clear": 5}]}]}
    )  # fmt: skip
    engine = AlarmEngine(book)
    engine.observe("lvl", "g1", 0.0, 20.0)
    engine.sweep(PENDING_GAP_S)
    assert "lvl/g1" in engine.state.machines  # hourly gauges keep their pending condition
    (raised,) = engine.observe("lvl", "g1", 3600.0, 20.0)
    assert raised.state is AlarmState.RAISED
    engine.observe("lvl", "g2", 0.0, 20.0)
    engine.sweep(PENDING_GAP_S + 1)
    assert "lvl/g2" not in engine.state.machines


def test_forget_clears_an_open_alarm_and_drops_the_machine() -> None:
    engine, _ = run("river", [(0, 160)])
    (cleared,) = engine.forget("river", "e1", 500.0, Reason.SILENCE)
    assert (cleared.state, cleared.reason) == (AlarmState.CLEARED, Reason.SILENCE)
    assert cleared.cleared_at is not None and cleared.cleared_at.timestamp() == 500.0
    assert engine.state.machines == {}
    assert engine.forget("river", "e1", 600.0, Reason.SILENCE) == []


def test_a_command_from_a_department_that_does_not_own_the_domain_is_forbidden() -> None:
    from schemas.catalog import ALARM_OWNERS, may_act_on
    from streams.alarm_engine import ForbiddenCommand

    assert may_act_on("flood", "BPBD") and may_act_on("flood", None)
    assert not may_act_on("flood", "Dinas Perhubungan")
    assert set(ALARM_OWNERS) >= {r.domain for r in load_rules().rules}  # every domain owned
    engine = AlarmEngine(load_rules())
    raised = engine.observe("overspeed", "K1-01", 0.0, 95.0, {}, base=60.0)
    raised += engine.observe("overspeed", "K1-01", 30.0, 95.0, {}, base=60.0)
    (alarm,) = [a for a in raised if a.state.value == "raised"]
    cmd = AlarmCommand(alarm_id=alarm.id, action=CommandAction.CLEAR, by="sari",
                       at=datetime(2026, 1, 1, tzinfo=UTC), department="BPBD")  # fmt: skip
    with pytest.raises(ForbiddenCommand, match="sari of BPBD may not clear a transit alarm"):
        engine.command(cmd)
    own = cmd.model_copy(update={"department": "Dinas Perhubungan"})
    assert [a.state.value for a in engine.command(own)] == ["cleared"]
