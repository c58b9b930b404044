from schemas.alarms import AlarmState, Severity
from streams.alarm_machine import Phase, ThresholdRules, ThresholdState, step

RULES = ThresholdRules(
    kind="overspeed", min_duration_s=15, clear_hysteresis=5, clear_duration_s=15, critical_excess=20
)


def run(samples: list[tuple[float, float]], limit: float = 60.0):  # type: ignore[no-untyped-def]
    st = ThresholdState()
    out = []
    for ts, value in samples:
        out.extend(step(st, RULES, "bus-1", ts, value, limit, {"corridor": "K1"}))
    return st, out


def test_a_short_spike_raises_nothing() -> None:
    st, out = run([(0, 40), (5, 80), (10, 85), (15, 40), (20, 40)])
    assert out == [] and st.phase is Phase.IDLE


def test_raises_once_after_the_minimum_duration() -> None:
    _, out = run([(0, 40), (5, 70), (10, 71), (15, 72), (20, 72), (25, 72)])
    assert [a.state for a in out] == [AlarmState.RAISED]
    alarm = out[0]
    assert alarm.started_at.timestamp() == 5 and alarm.last_seen.timestamp() == 20
    assert alarm.threshold == 60 and alarm.value == 72 and alarm.severity is Severity.WARNING
    assert alarm.id == "overspeed/bus-1/5000" and alarm.context == {"corridor": "K1"}


def test_hysteresis_keeps_one_alarm_per_episode() -> None:
    # Hovering around the limit (57-62) never clears: one episode, one alarm.
    samples = [(t, 70.0) for t in range(0, 25, 5)]
    samples += [(25 + i * 5, 57.0 if i % 2 else 62.0) for i in range(20)]
    _, out = run(samples)
    assert [a.state for a in out] == [AlarmState.RAISED]


def test_clears_after_staying_below_the_clear_threshold() -> None:
    samples = [(t, 70.0) for t in range(0, 25, 5)] + [(t, 40.0) for t in range(25, 60, 5)]
    _, out = run(samples)
    assert [a.state for a in out] == [AlarmState.RAISED, AlarmState.CLEARED]
    cleared = out[-1]
    assert cleared.id == out[0].id and cleared.version == 2
    assert cleared.cleared_at is not None and cleared.cleared_at.timestamp() == 40


def test_two_episodes_two_alarms() -> None:
    episode = [(t, 70.0) for t in range(0, 25, 5)] + [(t, 30.0) for t in range(25, 60, 5)]
    second = [(t + 100, v) for t, v in episode]
    _, out = run(episode + second)
    raised = [a for a in out if a.state is AlarmState.RAISED]
    assert len(raised) == 2 and raised[0].id != raised[1].id


def test_escalation_to_critical_is_an_update() -> None:
    samples = [(0, 70.0), (5, 70.0), (10, 70.0), (15, 70.0), (20, 85.0)]
    _, out = run(samples)
    assert [a.state for a in out] == [AlarmState.RAISED, AlarmState.UPDATED]
    assert out[-1].severity is Severity.CRITICAL and out[-1].value == 85.0


def test_silence_clears_at_the_last_sample() -> None:
    samples = [(t, 70.0) for t in range(0, 25, 5)] + [(2000.0, 30.0)]
    _, out = run(samples)
    assert [a.state for a in out] == [AlarmState.RAISED, AlarmState.CLEARED]
    assert out[-1].last_seen.timestamp() == 20
