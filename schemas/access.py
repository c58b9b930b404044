"""Who may act through the API: bearer tokens, kept only as SHA-256 hashes, each with a
name (recorded as the actor), roles, and optionally the department (OPD) it speaks for."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Role(StrEnum):
    ALARMS = "alarms"  # acknowledge and clear alarms (situation-room operators)
    REPORTS = "reports"  # move citizens' reports through their lifecycle (department staff)


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
