"""The one settings object of the backend (web app, REST API, arq worker, supervisor).

Every tier (one machine, Docker Compose, Kubernetes) runs the same code; tiers differ only in
these values. Each variable is documented in `.env.example`.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_prefix="VTP_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of every persistent file.")
    host: str = "127.0.0.1"

    # Ports of the local stack (tier 1). Other tiers only use the URLs below.
    web_port: int = 3000
    redis_port: int = 6390
    s3_port: int = 9100
    mlflow_port: int = 5100
    trainer_port: int = 8100
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="Log lines: JSON, human-readable, or auto (console on a terminal)."
    )
    sentry_dsn: SecretStr = Field(
        default=SecretStr(""), description="Send errors to Sentry (or a compatible server); empty: off."
    )
    worker_metrics_port: int = Field(
        default=0,
        description="Serve the worker's own /metrics on this port (0: off; the web app serves them).",
    )
    # `vtp up --ray`: a local Ray head (its GCS port and its dashboard, the Job Submission API).
    ray_port: int = 6389
    ray_dashboard_port: int = 8265

    # Service URLs; empty means "the local stack's process on host:port".
    database_url: str = ""
    redis_url: str = ""
    s3_endpoint_url: str = ""
    s3_access_key: str = "vtp-local-access"
    s3_secret_key: str = "vtp-local-secret-change-me"
    s3_region: str = "us-east-1"
    s3_bucket: str = "vtp"
    mlflow_tracking_uri: str = ""
    trainer_url: str = ""
    public_api_url: str = Field(
        default="",
        description="Base URL at which trainers reach the backend API (callbacks).",
    )

    web_build_cache: str = Field(
        default=str(Path("~/.cache/vtp/web")),
        description="`vtp up` keeps the web app's built frontend here and reuses it while the "
        "sources are unchanged (services.runtime.web_build); empty: build on every start.",
    )

    trainer_workdir: Path = Field(
        default=Path(tempfile.gettempdir()) / "vtp-trainer",
        description="The local trainer's HOME, cwd and scratch space; disposable, never under data_dir.",
    )

    # Jobs
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = Field(
        default=30.0, description="A running job silent this long is checked with its trainer."
    )
    reconcile_interval_s: int = Field(
        default=10, ge=1, le=60, description="How often the worker looks for silent or lost jobs."
    )
    max_attempts: int = Field(default=3, ge=1, description="Dispatches of one job before giving up.")
    dispatch_interval_s: float = Field(
        default=1.0, ge=0.05, le=60, description="While jobs wait, ask the trainer for room this often."
    )
    dispatch_idle_s: float = Field(
        default=5.0, ge=0.1, le=300, description="With no job waiting, look at the queue this often."
    )
    trainer_breaker_failures: int = Field(
        default=5, ge=1, description="Connection failures in a row that open the trainer circuit."
    )
    trainer_breaker_reset_s: int = Field(
        default=30, ge=1, description="How long an open trainer circuit refuses calls before one trial."
    )
    access_token_ttl_s: int = 12 * 3600
    max_upload_bytes: int = 2 * 1024**3

    # Security: tokens, rate limits (in the `limits` library's notation), sign-up, body limits.
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key for access tokens; when unset one is generated into DATA_DIR/jwt_secret.",
    )
    jwt_access_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    personal_token_max_days: int = 366
    password_reset_ttl_s: int = 3600
    signup_enabled: bool = Field(default=True, description="Default; a platform admin can override it.")
    login_limit_per_account: str = "10 per 15 minutes"
    login_limit_per_ip: str = "50 per 15 minutes"
    api_limit_per_token: str = "1200 per minute"
    signup_limit_per_ip: str = "20 per hour"
    max_request_bytes: int = Field(default=1024 * 1024, description="Body limit for everything but uploads.")

    # Capacity of one web process (see app/api/overload.py and services/infra/db.py): sized from
    # bench/load_test.py on 2 cores; raise them with the cores, never above what the database allows.
    api_max_concurrency: int = Field(
        default=4,
        ge=1,
        description="REST requests (browsing, actions) served at once per web process. More only "
        "adds threads contending for one GIL (app/api/overload.py); raise it with a database that "
        "makes requests wait on the network (PostgreSQL far away).",
    )
    web_workers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Web processes on the one web port (gunicorn workers). One serves one GIL's "
        "worth of requests (bench/load_test.py); more keep the pages' state in Redis, which "
        "costs pages with large state time per event (services/runtime/web.py).",
    )
    callback_max_concurrency: int = Field(
        default=8, ge=1, description="Trainer callbacks applied at once per web process (own lane)."
    )
    upload_max_concurrency: int = Field(
        default=4, ge=1, description="File uploads received at once per web process (own lane)."
    )
    api_queue_wait_s: float = Field(
        default=1.0,
        ge=0,
        description="How long after arriving a request must have started its work (its waits for a "
        "slot, a thread and a connection together), or be answered 503 while the API is saturated.",
    )
    api_retry_after_s: float = Field(default=1.0, ge=1, description="Retry-After sent with a 503.")
    web_spare_threads: int = Field(
        default=8, ge=1, description="Worker threads beyond the lanes' slots (Reflex page events)."
    )
    db_pool_size: int = Field(default=20, ge=1, description="Connections a process keeps open.")
    db_max_overflow: int = Field(default=20, ge=0, description="Extra connections opened under load.")
    db_pool_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait for a free connection; past it the API answers 503."
    )
    sqlite_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="Longest wait for SQLite's write lock held by another process."
    )
    password_hash_profile: Literal["RFC_9106_LOW_MEMORY", "RFC_9106_HIGH_MEMORY", "CHEAPEST"] = Field(
        default="RFC_9106_LOW_MEMORY",
        description=(
            "argon2 parameters for new password hashes (an argon2-cffi profile; the default costs"
            " 64 MiB and about 0.1 s a hash). CHEAPEST is for test suites only. Stored hashes keep"
            " verifying under any profile and are rehashed at their owner's next sign-in."
        ),
    )
    slow_query_ms: float = Field(default=100.0, ge=0, description="Statements slower than this are logged.")

    # Single sign-on with any OpenID Connect provider; an empty issuer switches it off.
    oidc_issuer: str = Field(default="", description="Issuer URL; its discovery document must be reachable.")
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_display_name: str = Field(default="single sign-on", description="Shown as 'Sign in with …'.")
    oidc_scopes: str = "openid email profile"

    # Notifications (services.domain.notifications): sending retries, and e-mail to users about their
    # own jobs. An empty SMTP host switches e-mail off; the in-app list works without it.
    notify_max_tries: int = Field(
        default=5, ge=1, le=20, description="Attempts per delivery before giving up."
    )
    notify_retry_base_s: float = Field(
        default=10.0, gt=0, le=3600, description="Wait before the 2nd attempt; doubles with each retry."
    )
    notify_timeout_s: float = Field(default=10.0, gt=0, le=120, description="One delivery attempt's limit.")
    smtp_host: str = Field(default="", description="SMTP server for e-mail to users; empty: no e-mail.")
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="vtp@localhost", description="The From: address of the platform's e-mail.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS.")

    @field_validator("data_dir", "trainer_workdir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def web_build_dir(self) -> Path | None:
        return Path(self.web_build_cache).expanduser().resolve() if self.web_build_cache else None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'vtp.db'}"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def s3_endpoint(self) -> str:
        return self.s3_endpoint_url or f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    @property
    def trainer_base_url(self) -> str:
        return (self.trainer_url or f"http://{self.host}:{self.trainer_port}").rstrip("/")

    @property
    def api_base_url(self) -> str:
        # Reflex in prod mode serves pages, websocket and the REST API on the one web port.
        return (self.public_api_url or self.web_url).rstrip("/")

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
