"""Issue 10, secure by default: an API reachable from the network needs tokens, and the
shipped deployments provide them."""

from pathlib import Path

import helm_python as helm
import pytest
import yaml

from schemas.access import Role, add_token, exposure_problem, is_loopback, load_access
from schemas.settings import Settings
from sitroom.cli import main
from sitroom.runtime import ConfigError, check_api_exposure

ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = {"kafka": {"bootstrap": "kafka:9092"}, "clickhouse": {"dsn": "http://c:8123"}}


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_nothing(host: str) -> None:
    assert is_loopback(host) and exposure_problem(host, None, False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "sitroom.semarangkota.go.id"])
def test_beyond_loopback_the_api_refuses_to_start_without_tokens(host: str) -> None:
    problem = exposure_problem(host, None, False)
    assert problem and "SITROOM_API_TOKENS_FILE" in problem and "SITROOM_API_OPEN" in problem
    with pytest.raises(ConfigError, match="no tokens"):
        check_api_exposure(settings(api_host=host))
    assert exposure_problem(host, Path("tokens.toml"), False) is None


def test_open_on_purpose_starts_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        check_api_exposure(settings(api_host="0.0.0.0", api_open=True))
    assert any("without tokens" in r.getMessage() for r in caplog.records)


def test_the_cli_says_so_in_one_line_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SITROOM_API_HOST", "0.0.0.0")
    monkeypatch.setenv("SITROOM_DATA_DIR", str(tmp_path))
    for command in ("api", "up"):
        assert main([command]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "beyond this machine, with no tokens" in err
    assert not (tmp_path / "broker.address").exists()  # nothing was started


def test_token_add_keeps_only_the_hash_in_an_owner_only_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secrets" / "api-tokens.toml"
    assert main(["token", "add", "budi.dpu", "--roles", "reports",
                 "--department", "Dinas Pekerjaan Umum", "--file", str(path)]) == 0  # fmt: skip
    token = capsys.readouterr().out.strip()
    second = add_token(path, "ops.room", [Role.ALARMS, Role.REPORTS])
    book = load_access(path)
    assert token not in path.read_text() and second not in path.read_text()
    assert book.find(token).name == "budi.dpu"  # type: ignore[union-attr]
    assert book.find(token).department == "Dinas Pekerjaan Umum"  # type: ignore[union-attr]
    assert book.find(second).roles == [Role.ALARMS, Role.REPORTS]  # type: ignore[union-attr]
    assert path.stat().st_mode & 0o777 == 0o600
    assert main(["token", "add", "budi.dpu", "--roles", "alarms", "--file", str(path)]) == 2
    assert main(["token", "add", "x", "--roles", "root", "--file", str(path)]) == 2


def test_the_chart_requires_a_tokens_secret_or_an_explicit_open_api() -> None:
    chart = helm.Chart.load(ROOT / "helm" / "sitroom")
    with pytest.raises(Exception, match=r"api\.tokensSecret is required"):
        chart.render(values=CHART_VALUES)

    def api_container(values: dict[str, object]) -> tuple[dict, dict]:  # type: ignore[type-arg]
        doc = yaml.safe_load(chart.render(values=values)["sitroom/templates/deployment-api.yaml"])
        spec = doc["spec"]["template"]["spec"]
        return spec, spec["containers"][0]

    spec, api = api_container({**CHART_VALUES, "api": {"tokensSecret": "sitroom-api-tokens"}})
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["SITROOM_API_TOKENS_FILE"] == "/etc/sitroom/tokens/tokens.toml"
    assert "SITROOM_API_OPEN" not in env
    assert {"name": "api-tokens", "mountPath": "/etc/sitroom/tokens", "readOnly": True} in api[
        "volumeMounts"
    ]
    (vol,) = [v for v in spec["volumes"] if v["name"] == "api-tokens"]
    assert vol["secret"]["secretName"] == "sitroom-api-tokens"
    _, api = api_container({**CHART_VALUES, "api": {"open": True}})
    assert {"name": "SITROOM_API_OPEN", "value": "true"} in api["env"]


def test_compose_gives_the_api_its_tokens_file_as_a_secret() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    api = compose["services"]["api"]
    assert api["environment"]["SITROOM_API_HOST"] == "0.0.0.0"
    assert api["environment"]["SITROOM_API_TOKENS_FILE"] == "/run/secrets/api-tokens"
    assert api["secrets"] == ["api-tokens"]
    assert compose["secrets"]["api-tokens"]["file"] == "./secrets/api-tokens.toml"
    assert "SITROOM_API_OPEN" not in api["environment"]
