"""The operations team's view of a running `up`: a real Prometheus (Debian's package)
scrapes it and a connector, the targets are up, and the room's alert rules fire when the
connector is stopped; `sitroom status` prints what is up, lag, silences, alarms and dead
letters."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.e2e.test_up import SITROOM, Up, env, wait_json  # noqa: F401 (env is a fixture)

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_config(tmp: Path, worker: str, connector: str) -> Path:
    """The shipped rules, with their `for:` durations cut to seconds so that a test can
    see them fire; the expressions are the shipped ones."""
    rules = re.sub(r"for: \d+m", "for: 5s", RULES.read_text())
    (tmp / "alerts.yml").write_text(rules)
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {tmp / 'alerts.yml'}\n"
        "scrape_configs:\n"
        f"  - job_name: sitroom-worker\n    static_configs:\n      - targets: ['{worker}']\n"
        f"  - job_name: sitroom-simulator\n    static_configs:\n      - targets: ['{connector}']\n"
    )
    return config


def test_prometheus_scrapes_up_and_fires_when_a_connector_stops(
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    assert prometheus and promtool, (
        "Prometheus is needed: apt-get install -y prometheus (.ci/run installs it)"
    )
    up = Up(env)
    connector = prom = None
    try:
        api = urlsplit(up.base).netloc
        metrics_port = free_port()
        connector = subprocess.Popen(
            [*SITROOM, "connect", "simulator"],
            env={**env, "SITROOM_METRICS_PORT": str(metrics_port)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port = free_port()
        config = prometheus_config(tmp_path, api, f"127.0.0.1:{metrics_port}")
        check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                               text=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        prom = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}/api/v1"

        def all_up(body: dict) -> bool:  # type: ignore[type-arg]
            targets = body["data"]["activeTargets"]
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)

        wait_json(f"{base}/targets", all_up, 90)
        # What the worker exports is what the rules and dashboards read.
        series = wait_json(f"{base}/query?query=sitroom_events_consumed_total",
                           lambda b: len(b["data"]["result"]) >= 1, 60)  # fmt: skip
        assert {r["metric"]["job"] for r in series["data"]["result"]} == {"sitroom-worker"}
        status = subprocess.run([*SITROOM, "status", "--api", up.base], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert status.returncode == 0, status.stdout + status.stderr
        assert "api up" in status.stdout and "broker up" in status.stdout, status.stdout
        for heading in ("consumer lag:", "silent:", "active alarms:", "dead letters (last hour):"):
            assert heading in status.stdout, status.stdout

        def firing(body: dict) -> bool:  # type: ignore[type-arg]
            return any(a["labels"]["alertname"] == "SitroomTargetDown"
                       and a["labels"]["job"] == "sitroom-simulator" and a["state"] == "firing"
                       for a in body["data"]["alerts"])  # fmt: skip

        assert not firing(httpx.get(f"{base}/alerts", timeout=10).json())
        connector.terminate()
        connector.wait(30)
        wait_json(f"{base}/alerts", firing, 60)
    finally:
        for proc in (connector, prom):
            if proc is not None and proc.poll() is None:
                proc.kill()
        code, _, _ = up.ctrl_c()
        assert code == 0
