"""Admin routes of the API: who am I, users, their sessions and API tokens
(``/api/v1/me``, ``/users``, ``/users/{username}/sessions``, ``/sessions``, ``/tokens``).
All but ``/me`` need the admin role; ``/me`` any signed-in caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from vq_ui.api.jobs import StoreDep
from vq_ui.auth import sessions, users
from vq_ui.auth.access import User, require
from vq_ui.auth.roles import Role

router = APIRouter(prefix="/api/v1")
Reader = Annotated[User, Depends(require("read"))]
Admin = Annotated[User, Depends(require("admin"))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token or session"},
    403: {"description": "Admins only"},
}


class NewUser(BaseModel):
    """A user to create; without a password one is generated and returned once."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=users.USERNAME.pattern)
    role: Role
    password: str | None = Field(
        default=None, min_length=users.MIN_PASSWORD, max_length=users.MAX_PASSWORD
    )


class UserChange(BaseModel):
    """Fields to change on a user; omitted ones stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(
        default=None, min_length=users.MIN_PASSWORD, max_length=users.MAX_PASSWORD
    )


class NewToken(BaseModel):
    """An API token to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=users.TOKEN_NAME.pattern)
    role: Role


@router.get("/me", responses=_ERRORS)
async def me(user: Reader) -> dict[str, str]:
    """Who the caller is: name, role and how they authenticated."""
    return {"username": user.username, "role": user.role.value, "via": user.via}


@router.get("/users", responses=_ERRORS)
async def list_users(store: StoreDep, user: Admin) -> dict[str, Any]:
    """Every user (no password hashes)."""
    return {"users": [u.to_dict() for u in await users.list_users(store)]}


@router.post("/users", status_code=201, responses={409: {"description": "Name taken"}, **_ERRORS})
async def create_user(body: NewUser, store: StoreDep, user: Admin) -> dict[str, Any]:
    """Create a user; the answer carries the password only if it was generated."""
    password = body.password or users.generate_password()
    created = await users.create_user(store, body.username, password, body.role)
    out = created.to_dict()
    if body.password is None:
        out["password"] = password
    return out


@router.patch("/users/{username}", responses={404: {"description": "No such user"}, **_ERRORS})
async def change_user(
    username: str, body: UserChange, store: StoreDep, user: Admin
) -> dict[str, Any]:
    """Change a user's role, disabled flag or password; a new password, another role or
    disabling ends the user's sessions."""
    changed = await users.update_user(
        store, username, password=body.password, role=body.role, disabled=body.disabled
    )
    return changed.to_dict()


@router.get(
    "/users/{username}/sessions", responses={404: {"description": "No such user"}, **_ERRORS}
)
async def list_sessions(username: str, store: StoreDep, user: Admin) -> dict[str, Any]:
    """A user's live sessions, newest first; ``current`` marks the caller's own."""
    found = await sessions.list_sessions(store, username)
    return {"sessions": [{**s.to_dict(), "current": s.id == user.session_id} for s in found]}


@router.delete(
    "/users/{username}/sessions", responses={404: {"description": "No such user"}, **_ERRORS}
)
async def end_user_sessions(username: str, store: StoreDep, user: Admin) -> dict[str, Any]:
    """End every session of a user (the caller's own too, if it is theirs)."""
    return {"username": username, "ended": await sessions.end_user_sessions(store, username)}


@router.delete(
    "/sessions/{session_id}", responses={404: {"description": "No such session"}, **_ERRORS}
)
async def end_session(
    session_id: Annotated[int, Path(ge=1, le=2**63 - 1)], store: StoreDep, user: Admin
) -> dict[str, Any]:
    """End one session by its id (from the list); its cookie gets 401 from now on."""
    return (await sessions.end_session_by_id(store, session_id)).to_dict()


@router.get("/tokens", responses=_ERRORS)
async def list_tokens(store: StoreDep, user: Admin) -> dict[str, Any]:
    """Every API token (no secrets), revoked ones included."""
    return {"tokens": [t.to_dict() for t in await users.list_tokens(store)]}


@router.post("/tokens", status_code=201, responses={409: {"description": "Name taken"}, **_ERRORS})
async def create_token(body: NewToken, store: StoreDep, user: Admin) -> dict[str, Any]:
    """Create a token; ``token`` in the answer is the only time it is shown."""
    created = await users.create_token(store, body.name, body.role)
    return {**created.info.to_dict(), "token": created.token}


@router.delete("/tokens/{token_id}", responses={404: {"description": "No such token"}, **_ERRORS})
async def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], store: StoreDep, user: Admin
) -> dict[str, Any]:
    """Revoke a live token; requests with it get 401 from now on."""
    return (await users.revoke_token(store, token_id)).to_dict()
