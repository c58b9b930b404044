"""Authorisation of the API's actions (acknowledging alarms, moving reports).

Without ``SITROOM_API_TOKENS_FILE`` the API is open, as for the embedded run on one machine;
with it, these actions need ``Authorization: Bearer <token>`` and the token's role, and the
token's name is recorded as the actor instead of what the body says."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from schemas.access import AccessBook, Role


@dataclass(frozen=True)
class Caller:
    name: str | None  # None: the API is open and the body names the actor
    department: str | None = None


def authorize(request: Request, role: Role) -> Caller:
    book: AccessBook | None = request.app.state.access
    if book is None:
        return Caller(None)
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    token = book.find(secret.strip()) if scheme.lower() == "bearer" and secret else None
    if token is None:
        raise HTTPException(
            401, "a valid bearer token is needed", headers={"WWW-Authenticate": "Bearer"}
        )
    if role not in token.roles:
        raise HTTPException(403, f"{token.name} may not {role.value}")
    return Caller(token.name, token.department)
