"""Settings: one object, built once from ``LRS_*`` environment variables and handed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lrs.xapi.versions import SUPPORTED, Version


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("lrs", appauthor=False))


class Settings(BaseSettings):
    """Everything the server can be told. Each field is ``LRS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="LRS_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL in data_dir is started.",
    )
    read_database_url: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Read replicas of the database (PostgreSQL streaming replicas), comma-"
        "separated. Statement queries, documents' GETs, analytics and the dashboard read from "
        "them; writes go to the primary, and so do a credential's reads until a replica has "
        "replayed its last write. Unset: everything reads from the primary.",
    )
    replica_max_lag_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A read replica further behind the primary than this is not read from.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded PostgreSQL keeps its data.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    pool_size: int = Field(default=10, ge=1)
    base_path: str = Field(default="/xapi", description="Where the xAPI resources are mounted.")
    authority_home_page: str = Field(
        default="http://127.0.0.1:8000/credentials",
        description="account.homePage of the authority stamped for a credential.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs 'more' tokens. Unset: derived from the database, so every "
        "worker and replica sharing the database agrees.",
    )
    credential_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified credential is trusted before it is read again. "
        "Changes reach every process at once through PostgreSQL notifications; this bounds "
        "staleness only if that channel is down.",
    )
    admin_key: str | None = Field(default=None, description="Key of an admin credential ensured at start-up.")
    admin_secret: str | None = Field(default=None, description="Its secret (at least 16 characters).")
    auth_failures_per_minute: int = Field(
        default=30,
        ge=1,
        description="Failed authentications allowed per client address and per key per "
        "minute, in each worker process, before 429.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest total size of a request's headers."
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_batch_statements: int = Field(default=1000, ge=1)
    default_query_limit: int = Field(default=100, ge=1)
    max_query_limit: int = Field(default=1000, ge=1)
    default_timezone: str = "Europe/Oslo"
    analytics_rollups: bool = Field(
        default=True,
        description="Keep the analytics rollups. Off: ingest is cheaper and /analytics answers 503.",
    )
    background_worker: bool = Field(
        default=True,
        description="Take part in the election of the installation's background worker "
        "(rollup folding, forwarding). One process wins; another takes over when it goes.",
    )
    fold_gather_seconds: float = Field(
        default=0.5,
        ge=0,
        description="Once the background worker has folded every stored statement into the "
        "rollups, how long it lets new ones gather before the next fold. Larger folds cost "
        "less per statement; the figures lag by up to this much more.",
    )
    forward_retry_seconds: float = Field(
        default=5.0, gt=0, description="Wait after a forwarding batch's first failure; doubles each time."
    )
    forward_retry_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest wait between a forwarding batch's attempts."
    )
    forward_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of a forwarding POST.")
    xapi_versions: Annotated[tuple[Version, ...], NoDecode] = Field(
        default=SUPPORTED,
        description="The xAPI versions served, comma-separated (e.g. 1.0.3). A request that "
        "names no version is answered in the newest of them.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="When set, /metrics answers only requests with 'Authorization: Bearer "
        "<token>'. Unset, it answers anyone who can reach the server.",
    )
    log_level: str = "info"
    sql_trace_dir: Path | None = Field(
        default=None,
        description="When set, each process appends every distinct SQL text it runs to a file "
        "of its own here (for finding what a workload asks of the database; the tests' "
        "store_id check reads it).",
    )

    @field_validator("read_database_url", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(u.strip() for u in value.split(",") if u.strip())
        return value

    @field_validator("xapi_versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not value:
            raise ValueError("at least one xAPI version must be served")
        try:
            return tuple(sorted({Version(v) for v in value}, reverse=True))
        except ValueError:
            raise ValueError(f"xAPI versions are 1.0.3 and 2.0.0, got {value!r}") from None


COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
PASSED = "http://adlnet.gov/expapi/verbs/passed"
FAILED = "http://adlnet.gov/expapi/verbs/failed"
# cmi5: an LMS records a waived or satisfied requirement; either means the learner is done.
SATISFIED = "https://w3id.org/xapi/adl/verbs/satisfied"
WAIVED = "https://w3id.org/xapi/adl/verbs/waived"
RATED = "http://id.tincanapi.com/verb/rated"


class StoreSettings(BaseModel):
    """Settings of one store, kept in the database and changed through the admin API."""

    model_config = ConfigDict(extra="forbid")

    min_group_size: int = Field(
        default=5, ge=1, description="Aggregates over fewer learners than this are suppressed."
    )
    completion_verbs: list[str] = Field(
        default=[COMPLETED, PASSED, SATISFIED, WAIVED],
        description="Verbs that count as completing an activity.",
    )
    passed_verbs: list[str] = Field(default=[PASSED], description="Verbs that count as passing.")
    failed_verbs: list[str] = Field(default=[FAILED], description="Verbs that count as failing.")
    rating_verbs: list[str] = Field(
        default=[RATED],
        description="Verbs whose statements carry a participant's own rating of the activity in "
        "result.score (self-assessment, feedback), never an achievement.",
    )
    timezone: str | None = Field(
        default=None, description="Default analytics time zone (IANA name) for this store."
    )
    max_document_bytes: int | None = Field(
        default=None, ge=1, description="Overrides LRS_MAX_DOCUMENT_BYTES for this store."
    )
    max_attachment_bytes: int | None = Field(
        default=None, ge=1, description="Overrides LRS_MAX_ATTACHMENT_BYTES for this store."
    )
    rollups_in_transaction: bool = Field(
        default=False,
        description="Fold this store's statements into the analytics rollups in the write "
        "transaction itself, so figures are exact the moment a write is answered. Off: the "
        "background worker folds them within seconds, and writes are cheaper.",
    )
    profile_put_creates_without_precondition: bool = Field(
        default=False,
        description="Accept a PUT of an Activity or Agent Profile document that carries neither "
        "If-Match nor If-None-Match when the document does not exist yet, as older clients "
        "send it (xAPI asks for a 400). An overwrite without either header stays a 409.",
    )

    retention_months: int | None = Field(
        default=None,
        ge=1,
        description="Keep statements this many months after they were stored: a daily job of "
        "the background worker deletes older ones, with their index rows, the attachments no "
        "other statement declares, and their part of the analytics figures. Off when unset.",
    )
    pseudonymise: bool = Field(
        default=False,
        description="Replace every agent in a statement by a stable pseudonymous account (a "
        "keyed hash of its identifier under this store's own secret) and drop names, before "
        "the statement is stored. Queries and documents by the original identifier still "
        "work. Statements are stored changed; see README, Personal data.",
    )
    pseudonym_home_page: str | None = Field(
        default=None,
        description="The account homePage of the pseudonyms (required with pseudonymise).",
    )

    region_sharing: bool = Field(
        default=False,
        description="Allow this store to join regions: its aggregate figures (never statements, "
        "documents or anything per person) are counted in the answers of the regions it is a "
        "member of. Turning it off takes the store out of every region's answers at once.",
    )
    region_display_name: str | None = Field(
        default=None,
        description="The name regions show this store under when comparing stores (group_by="
        "store). Unset: the store is shown as 'municipality N'.",
    )

    @model_validator(mode="after")
    def _pseudonyms_need_home(self) -> StoreSettings:
        if self.pseudonymise and not self.pseudonym_home_page:
            raise ValueError("pseudonym_home_page: is required when pseudonymise is on")
        if self.pseudonym_home_page and not urlsplit(self.pseudonym_home_page).scheme:
            raise ValueError("pseudonym_home_page: must be an absolute IRI, such as https://kommune.no/lrs")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone name") from None
        return value

    def zone(self, default: str) -> str:
        """The store's analytics time zone, else the LRS default."""
        return self.timezone or default


def store_settings(raw: dict[str, Any]) -> StoreSettings:
    return StoreSettings.model_validate(raw or {})
