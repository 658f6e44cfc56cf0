"""Settings: every option is ``CREDITBANK_*`` in the environment, mirrored by CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """creditbank configuration (pydantic-settings)."""

    model_config = SettingsConfigDict(env_prefix="CREDITBANK_", extra="ignore")

    home: Path = Field(default=Path(".creditbank"), description="keys, SQLite database, files")
    database_url: str | None = Field(default=None, description="PostgreSQL URL; default SQLite")
    origin: str = Field(default="creditbank.localhost/log", description="checkpoint origin")
    bank_id: str = Field(default="BANK", description="the bank's own institution id")
    bank_name_zh: str = "学分银行"
    bank_name_en: str = "Credit Bank"
    checkpoint_interval: float = Field(default=1.0, description="seconds from append to checkpoint")
    sqlite_synchronous: str = Field(default="FULL", description="SQLite synchronous pragma")
    max_clock_skew_seconds: float = Field(
        default=300, ge=0, description="how far a new entry's signing time may be ahead"
    )
    max_signature_age_seconds: float = Field(
        default=7 * 86400, gt=0, description="how old a new entry's signing time may be"
    )
    learner_writes_per_minute: float = Field(
        default=12, gt=0, description="applications one learner token may make per minute"
    )
    learner_write_burst: int = Field(default=6, ge=1, description="... of them at once")
    institution_writes_per_minute: float = Field(
        default=1200, gt=0, description="writes (posts, resolutions) per institution per minute"
    )
    institution_write_burst: int = Field(default=200, ge=1, description="... of them at once")
    public_base_url: str = "http://127.0.0.1:8000"
    document_cert: Path | None = Field(
        default=None, description="PDF-signing certificate (PEM); default: the demo one in keys/"
    )
    document_key: Path | None = Field(default=None, description="its private key (PEM, 0600)")
    document_chain: Path | None = Field(
        default=None, description="the CA certificates above it (PEM), trusted by verifiers"
    )
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def db_url(self) -> str:
        """The database URL in use: PostgreSQL if configured, else SQLite in the home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'creditbank.db').resolve()}"
