"""Roles, what each may do, and who is asking: shared by the API, the pages and the CLI."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """A user's or a token's role: ``admin`` does everything, ``operator`` steers jobs,
    ``viewer`` only reads."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


#: Which roles may perform each kind of action.
ROLE_CAN: dict[str, frozenset[Role]] = {
    "read": frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    "act": frozenset({Role.ADMIN, Role.OPERATOR}),
    "admin": frozenset({Role.ADMIN}),
}


def can(role: Role, action: str) -> bool:
    """Whether ``role`` may perform ``action`` (``read``, ``act`` or ``admin``)."""
    try:
        return role in ROLE_CAN[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ROLE_CAN)}") from None


@dataclass(frozen=True)
class User:
    """Whoever made a request: a signed-in user (``via="session"``, ``session_id`` the
    session's id) or an API token (``via="token"``, ``username`` is the token's name)."""

    username: str
    role: Role
    via: str
    session_id: int | None = None

    @property
    def label(self) -> str:
        """How the job history records who acted: ``alice`` or ``token:ci``."""
        return self.username if self.via == "session" else f"token:{self.username}"

    def can(self, action: str) -> bool:
        """Whether this user may perform ``action``."""
        return can(self.role, action)
