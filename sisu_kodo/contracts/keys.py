"""API key bodies: creating a key (shown once), and listing keys (never their secret)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sisu_kodo.contracts.text import Text

ALL_TENANTS = "*"


class Role(StrEnum):
    VIEWER = "viewer"
    SUBMITTER = "submitter"
    APPROVER = "approver"
    OPERATOR = "operator"
    ADMIN = "admin"


Tenant = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


class KeyCreate(BaseModel):
    """Body of POST /keys."""

    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200, pattern=r"\S")
    roles: list[Role] = Field(min_length=1, max_length=5)
    tenants: list[Text] = Field(min_length=1, max_length=100)
    expires: str | None = Field(
        None, pattern=r"^[1-9][0-9]{0,4}[dhm]$", description="A lifetime such as 30d, 12h, 90m."
    )


class KeyView(BaseModel):
    id: str
    name: str
    roles: list[Role]
    tenants: list[str]
    createdBy: str
    createdAt: str
    expiresAt: str | None = None
    revokedAt: str | None = None
    lastUsedAt: str | None = None


class KeyCreated(KeyView):
    """The new key; `key` is shown here once and stored only as a keyed hash."""

    key: str
