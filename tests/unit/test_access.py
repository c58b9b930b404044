import hashlib
from pathlib import Path

import httpx
import pytest

from api.app import create_api
from schemas.access import Role, load_access
from schemas.settings import Settings

TOKENS = {"ops-secret": ("room-operator", ["alarms"], None),
          "dpu-secret": ("dpu-staff", ["reports"], "Dinas Pekerjaan Umum")}  # fmt: skip


def tokens_file(tmp_path: Path) -> Path:
    lines = []
    for secret, (name, roles, department) in TOKENS.items():
        lines += ["[[token]]", f'name = "{name}"',
                  f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"', f"roles = {roles}"]  # fmt: skip
        if department:
            lines.append(f'department = "{department}"')
    path = tmp_path / "tokens.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class NoWarehouse:
    async def query(self, *args: object, **kwargs: object) -> list[dict[str, object]]:
        raise AssertionError("authorisation comes before any lookup")


async def test_tokens_are_checked_before_anything_else(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, api_tokens_file=tokens_file(tmp_path))  # type: ignore[call-arg]

    async def probe() -> bool:
        return True

    app = create_api(settings, NoWarehouse(), probe, None)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        ack = "/v1/alarms/overspeed/K1-01/1/acknowledge"
        r = await api.post(ack, json={"by": "someone"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = await api.post(ack, json={"by": "x"}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await api.post(ack, json={"by": "x"}, headers={"Authorization": "Bearer dpu-secret"})
        assert r.status_code == 403 and "dpu-staff" in r.json()["detail"]
        move = "/v1/reports/r-1/status"
        body = {"status": "in_progress", "actor": "x"}
        r = await api.post(move, json=body, headers={"Authorization": "Bearer ops-secret"})
        assert r.status_code == 403


def test_the_book_keeps_hashes_and_finds_by_secret(tmp_path: Path) -> None:
    book = load_access(tokens_file(tmp_path))
    found = book.find("dpu-secret")
    assert found is not None and found.department == "Dinas Pekerjaan Umum"
    assert found.roles == [Role.REPORTS] and book.find("nope") is None
    assert "dpu-secret" not in tokens_file(tmp_path).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[token]]\nname = "x"\nsha256 = "plain"\nroles = ["alarms"]\n')
    with pytest.raises(ValueError, match=r"bad\.toml"):
        load_access(bad)
