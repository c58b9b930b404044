"""Authorisation of the API's actions (acknowledging alarms, moving reports) and reads.

Without ``SITROOM_API_TOKENS_FILE`` the API is open, as for the embedded run on one machine:
every caller may do and read everything. With it, actions need ``Authorization: Bearer
<token>`` and the token's role, and the token's name is recorded as the actor instead of
what the body says; public reads need no token, and what is personal (a citizen's words,
exact point and photo, staff names, plates) is shown only to a token with ``staff``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from schemas.access import AccessBook, Role, Token


@dataclass(frozen=True)
class Caller:
    name: str | None  # None: the API is open and the body names the actor
    department: str | None = None


def _token(request: Request, book: AccessBook) -> Token:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    token = book.find(secret.strip()) if scheme.lower() == "bearer" and secret else None
    if token is None:
        raise HTTPException(
            401, "a valid bearer token is needed", headers={"WWW-Authenticate": "Bearer"}
        )
    return token


# Department staff who move reports must read them whole, and so must the duty officer.
READS_AS: dict[Role, set[Role]] = {Role.STAFF: {Role.STAFF, Role.REPORTS, Role.SUPERVISOR}}


def may_read(request: Request, role: Role) -> bool:
    """Whether this request may see what ``role`` may read. An anonymous request gets the
    public view (False); a token that is wrong is refused (401) rather than quietly served
    the public view, so a client with a typo finds out."""
    book: AccessBook | None = request.app.state.access
    if book is None:
        return True
    if not request.headers.get("authorization"):
        return False
    return bool(READS_AS.get(role, {role}) & set(_token(request, book).roles))


def authorize(request: Request, role: Role) -> Caller:
    book: AccessBook | None = request.app.state.access
    if book is None:
        return Caller(None)
    token = _token(request, book)
    if Role.SUPERVISOR in token.roles and role is Role.ALARMS:
        return Caller(token.name, None)  # the duty officer acts for the whole room
    if role not in token.roles:
        raise HTTPException(403, f"{token.name} may not {role.value}")
    return Caller(token.name, token.department)
