"""Settings: one object, built once from ``LRS_*`` environment variables and handed down."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("lrs", appauthor=False))


class Settings(BaseSettings):
    """Everything the server can be told. Each field is ``LRS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="LRS_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL in data_dir is started.",
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
        default=2.0,
        ge=0,
        description="How long a verified credential is trusted before it is read again.",
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_batch_statements: int = Field(default=1000, ge=1)
    default_query_limit: int = Field(default=100, ge=1)
    max_query_limit: int = Field(default=1000, ge=1)
    default_timezone: str = "Europe/Oslo"
    log_level: str = "info"
