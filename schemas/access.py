"""Who may act through the API: bearer tokens, kept only as SHA-256 hashes, each with a
name (recorded as the actor), roles, and optionally the department (OPD) it speaks for."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import tomllib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Role(StrEnum):
    """What a token may do. Reading what is public needs no token at all."""

    ALARMS = "alarms"  # acknowledge and clear its department's domains' alarms
    REPORTS = "reports"  # move its department's citizens' reports through their lifecycle
    STAFF = "staff"  # read personal data: citizens' full reports, exact points, plates
    ANALYST = "analyst"  # read-only SQL over the warehouse's non-personal tables
    SUPERVISOR = "supervisor"  # the room's duty officer: acts on every department's alarms


class Token(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="recorded as who acted")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")
    roles: list[Role] = Field(min_length=1)
    department: str | None = Field(
        None, description="limits report moves to this department's reports"
    )


class AccessBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[Token] = Field(default_factory=list, alias="token")

    def find(self, secret: str) -> Token | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        for token in self.tokens:
            if hmac.compare_digest(token.sha256, digest):
                return token
        return None


def load_access(path: Path) -> AccessBook:
    try:
        return AccessBook.model_validate(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"cannot use API tokens file {path}: {exc}") from exc


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_problem(host: str, tokens_file: Path | None, open_on_purpose: bool) -> str | None:
    """Why the API must not start as configured (None: it may). Beyond loopback, anyone on
    the network could clear alarms and move citizens' reports without tokens."""
    if is_loopback(host) or tokens_file is not None or open_on_purpose:
        return None
    return (
        f"the API would listen on {host}, beyond this machine, with no tokens: set "
        "SITROOM_API_TOKENS_FILE (create one with `sitroom token add`), or SITROOM_API_OPEN=true "
        "to run it open on purpose, or SITROOM_API_HOST=127.0.0.1"
    )


def add_token(path: Path, name: str, roles: list[Role], department: str | None = None) -> str:
    """Create a token, append its hash to the tokens file (created owner-only), and return
    the token itself: it is shown once and stored nowhere."""
    token = secrets.token_urlsafe(32)
    entry = Token(name=name, sha256=hashlib.sha256(token.encode()).hexdigest(), roles=roles,
                  department=department)  # fmt: skip
    book = load_access(path) if path.exists() else AccessBook()
    if any(t.name == name for t in book.tokens):
        raise ValueError(f"{path} already has a token named {name!r}")
    lines = ["", "[[token]]", f"name = {_toml(entry.name)}", f'sha256 = "{entry.sha256}"',
             "roles = [" + ", ".join(_toml(r.value) for r in entry.roles) + "]"]  # fmt: skip
    if department:
        lines.append(f"department = {_toml(department)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
        fh.write("\n".join(lines) + "\n")
    load_access(path)  # the file still reads as a whole
    return token


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string
