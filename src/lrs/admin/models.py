"""Request and response bodies of the admin API (the CLI prints the same shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lrs.config import StoreSettings
from lrs.ops.credentials import CredentialOut
from lrs.ops.stores import STORE_NAME, Store
from lrs.scopes import check_scopes
from lrs.xapi.errors import BadRequest
from lrs.xapi.validate import validator_for
from lrs.xapi.versions import Version


class StoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=STORE_NAME, description="Unique name, e.g. `bergen-kommune`.")


class StoreOut(BaseModel):
    id: int
    name: str
    created: datetime
    settings: StoreSettings

    @classmethod
    def of(cls, store: Store) -> StoreOut:
        return cls(
            id=store.id,
            name=store.name,
            created=store.created,
            settings=StoreSettings.model_validate(store.settings),
        )


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="", max_length=200, description="Who uses it, e.g. the vendor or analyst.")
    scopes: list[str] = Field(min_length=1, description="xAPI and LRS scopes it grants.")
    authority: dict[str, Any] | None = Field(
        default=None,
        description="The Agent (or two-member Group) stamped as `authority` on "
        "its statements. Default: an Agent with the key as account name.",
    )
    expires: datetime | None = Field(default=None, description="Refused after this time.")

    @field_validator("scopes")
    @classmethod
    def known_scopes(cls, scopes: list[str]) -> list[str]:
        try:
            return check_scopes(scopes)
        except BadRequest as exc:
            raise ValueError(exc.message) from None

    @field_validator("authority")
    @classmethod
    def valid_authority(cls, authority: dict[str, Any] | None) -> dict[str, Any] | None:
        if authority is not None:
            try:
                validator_for(Version.V2).authority(authority, "authority")
            except BadRequest as exc:
                raise ValueError(exc.message) from None
        return authority


class CredentialCreated(CredentialOut):
    secret: str = Field(description="Shown once; only its hash is kept.")


class SecretOut(BaseModel):
    key: str
    secret: str = Field(description="The new secret, shown once. The old one no longer works.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    store: str | None
    target: str | None
    details: dict[str, Any]


class PersonIn(BaseModel):
    """A person, by every identifier they may appear under in statements. Sent in a body,
    never in the URL, so that the identifiers stay out of access logs."""

    model_config = ConfigDict(extra="forbid")
    agents: list[dict[str, Any]] = Field(
        min_length=1,
        description='Agents naming the person, e.g. `[{"mbox": "mailto:kari@kommune.no"},'
        ' {"account": {"homePage": "https://lms.example", "name": "kari"}}]`. An mbox also '
        "finds statements that carry its mbox_sha1sum.",
    )


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=STORE_NAME, description="Unique name, e.g. `vestland`.")
    min_group_size: int = Field(
        default=5, ge=1, description="Smaller aggregates are suppressed (never below a member's own minimum)."
    )


class RegionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_group_size: int = Field(ge=1)


class RegionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    min_group_size: int
    created: datetime
    members: list[str] = Field(description="Member stores, in the order they joined.")
    sharing: list[str] = Field(description="The members whose setting region_sharing allows it: counted.")


class RegionCredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""


class RegionCredentialOut(BaseModel):
    key: str
    secret: str = Field(description="Shown once; only its hash is kept.")
    region: str
    scopes: list[str]
