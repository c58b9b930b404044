"""Deployment checked, not only parsed: promtool on the alert rules, and the Helm chart
rendered (Helm's Go SDK through helm-python-sdk) with a realistic production setup."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# A city's production: external Kafka (3 brokers) and ClickHouse, its DSN and the API tokens
# in Secrets made beforehand, real connectors, sized resources, a ServiceMonitor.
PRODUCTION: dict[str, Any] = {
    "fullnameOverride": "sitroom",
    "image": {"repository": "registry.semarangkota.go.id/sitroom/sitroom", "tag": "0.1.0"},
    "kafka": {
        "bootstrap": "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092",
        "topicReplication": 3,
    },
    "clickhouse": {"existingSecret": "sitroom-clickhouse", "existingSecretKey": "dsn"},
    "config": {"logLevel": "INFO", "extraEnv": {"SITROOM_TIMEZONE": "Asia/Jakarta"}},
    "worker": {
        "replicas": 3,
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    },
    "api": {
        "replicas": 3,
        "tokensSecret": "sitroom-api-tokens",
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    },
    "gtfsRt": {"enabled": True, "url": "https://gtfs.transsemarang.example/vehicle-positions"},
    "connectors": {
        "mqtt-bridge": {
            "enabled": True,
            "env": {"SITROOM_MQTT_URL": "mqtt://mosquitto.mqtt.svc:1883"},
        }
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
}


def test_promtool_passes_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not installed: `apt-get install -y prometheus` (Debian's package "
            "ships it; .ci/run installs it)"
        )
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in done.stdout


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm.Chart.load(ROOT / "helm" / "sitroom")
    out = chart.render(values=values)
    manifests = [text for name, text in out.items() if name.endswith((".yaml", ".yml"))]
    return [doc for text in manifests for doc in yaml.safe_load_all(text) if doc]


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "Job")}


def test_the_chart_renders_a_production_setup_with_probes_resources_and_secrets() -> None:
    docs = render(PRODUCTION)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Job", "ServiceMonitor"} <= kinds
    # The DSN comes from the existing Secret: the chart makes none and embeds no DSN.
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert "clickhouse" not in yaml.safe_dump([d for d in docs if d["kind"] == "ConfigMap"])
    found = workloads(docs)
    names = set(found)
    assert {
        "sitroom-api",
        "sitroom-worker",
        "sitroom-gtfs-rt",
        "sitroom-mqtt-bridge",
        "sitroom-topics",
    } <= names, names
    for name, doc in found.items():
        spec = doc["spec"]["template"]["spec"]
        for c in spec["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if name in ("sitroom-api", "sitroom-worker"):
                ref = env["SITROOM_CLICKHOUSE_DSN"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "sitroom-clickhouse", "key": "dsn"}, name
            else:  # connectors publish to Kafka only: no warehouse credentials
                assert "SITROOM_CLICKHOUSE_DSN" not in env, name
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], name
            assert res["limits"]["memory"], name
            if doc["kind"] == "Deployment":
                assert c["livenessProbe"], name
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
    api = found["sitroom-api"]
    spec = api["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert api["spec"]["replicas"] == 3
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000
    (tokens,) = [v for v in spec["volumes"] if v["name"] == "api-tokens"]
    assert tokens["secret"]["secretName"] == "sitroom-api-tokens"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-tokens")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SITROOM_API_TOKENS_FILE"] == f"{mount['mountPath']}/tokens.toml"
    assert "SITROOM_API_OPEN" not in env
    worker = found["sitroom-worker"]
    assert worker["spec"]["replicas"] == 3
    assert worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "2Gi"
    }
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["SITROOM_KAFKA_BOOTSTRAP"] == PRODUCTION["kafka"]["bootstrap"]
    assert config["SITROOM_TOPIC_REPLICATION"] == "3"
    # The API's Service reaches the container's named port.
    service = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "sitroom-api"
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_chart_notes_tell_analysts_where_sql_and_dashboards_are() -> None:
    chart = helm.Chart.load(ROOT / "helm" / "sitroom")
    notes = chart.render(values=PRODUCTION)["sitroom/templates/NOTES.txt"]
    assert "grafana-clickhouse-datasource" in notes and "sitroom-analysts.json" in notes
