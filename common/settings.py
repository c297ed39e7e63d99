"""Every setting of System1, read from the environment in one typed place.

Web nodes, workers and the dev stack all call `get_settings()`; nothing else
reads `os.environ` for configuration. The README lists each variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that must never be used outside development.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
# HS256 keys shorter than this are guessable offline from any token.
MIN_PRODUCTION_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Typed configuration; each field maps to the upper-case env variable."""

    # An empty variable counts as unset (docker compose passes `${VAR:-}` as "").
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    app_env: Literal["development", "test", "production"] = "development"

    # Storage and messaging
    database_url: str = "postgresql://postgres@127.0.0.1:5432/system1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Celery's broker; defaults to REDIS_URL so one Redis serves broker and sockets.
    celery_broker_url: str | None = None

    # Auth
    jwt_secret: str = DEV_JWT_SECRET
    jwt_expiry_s: int = Field(default=7 * 24 * 3600, gt=0)
    # Secret of the backoffice routes (/task); empty disables them.
    backoffice_secret: str = ""
    # Secret the Mojodex web app's server sends (its own MOJODEX_WEBAPP_SECRET) for the
    # routes it calls before anyone logs in (/is_email_service_configured); empty
    # disables them.
    mojodex_webapp_secret: str = ""

    # LLM (any OpenAI-compatible endpoint)
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=60.0, gt=0)
    # A stream that sends nothing for this long is abandoned.
    llm_stall_timeout_s: float = Field(default=30.0, gt=0)
    # A failed LLM call (error status, broken or stalled stream) is retried this
    # many times, as Celery countdown retries with exponential backoff.
    llm_max_retries: int = Field(default=2, ge=0)
    llm_retry_backoff_s: float = Field(default=1.0, gt=0)
    llm_temperature: float = 0.3
    # The model's context window in tokens; unset: the configured model's where known
    # (common/llm/context_window.py), else 128000. The prompt is fitted into it.
    llm_context_window_tokens: int | None = Field(default=None, gt=0)
    # The answer's limit, sent as the request's `max_tokens` and kept free in the window;
    # unset: nothing is sent and 1024 tokens (at most a quarter of the window) are kept.
    llm_max_answer_tokens: int | None = Field(default=None, gt=0)
    # A backup provider: a turn whose primary fails before its first token (refused,
    # reset, timeout, 5xx, 429) goes to it at once. Enabled by either setting; each
    # unset part is the primary's.
    llm_fallback_base_url: str | None = None
    llm_fallback_api_key: str | None = None
    llm_fallback_model: str | None = None
    # With a fallback: after this many failures of the primary in a row (shared by every
    # worker through Redis) the primary is skipped for LLM_BREAKER_OPEN_S, then tried again.
    llm_breaker_failures: int = Field(default=5, gt=0)
    llm_breaker_open_s: float = Field(default=30.0, gt=0)

    # Streaming: first token at once, then at most one mojo_token per window; the
    # window widens with the text's length up to the max (worker/streaming.py), so that
    # a long answer's bytes do not grow with the square of its length.
    token_emit_interval_ms: int = Field(default=50, ge=0)
    token_emit_max_interval_ms: int = Field(default=500, ge=0)

    # Web server
    host: str = "127.0.0.1"
    port: int = 5000
    # Comma-separated origins allowed besides the server's own, for REST (CORS
    # headers) and Socket.IO alike; never "*" by default.
    cors_allowed_origins: str = ""

    # Rate limits ("N/second|minute|hour|day", limits' syntax; "none" = no limit;
    # an empty variable means the default, as for every setting),
    # counted in Redis (REDIS_URL) and shared by every web node. If Redis is
    # unreachable the limiter fails open: it counts in the node's memory instead.
    # Logins (POST /user): per client address, and per email address tried.
    login_rate_limit: str = "10/minute"
    # Registrations (PUT /user): per client address.
    register_rate_limit: str = "10/minute"
    # User messages (PUT /user_message): per user, and per client address
    # (several users may share one address).
    message_rate_limit: str = "60/minute"
    message_address_rate_limit: str = "300/minute"

    # Tokens (prompt + completion, turns and titles) a user may spend per UTC day; past
    # it, new messages and task runs get 429 until midnight UTC. 0: no limit.
    user_daily_token_limit: int = Field(default=0, ge=0)

    # Queues
    turn_queue: str = "turns"
    delivery_queue: str = "delivery"
    # Background work on finished drafts (todo extraction): never in the way of turns.
    todo_queue: str = "todos"
    # Turns are I/O-bound LLM streams and a turn holds its slot for the whole stream: a
    # worker finishes at most turn_concurrency turns per turn duration
    # (docs/performance.md, "Turn concurrency").
    turn_concurrency: int = Field(default=100, gt=0)

    # Delivery: an unacknowledged message is resent every interval, at most max tries.
    resend_interval_s: float = Field(default=5.0, gt=0)
    resend_max_tries: int = Field(default=120, ge=0)

    # Recovery of lost work (a killed worker, a Redis restart): a running turn
    # renews its lease; a periodic sweep restarts turns whose lease ran out, first
    # deliveries that never happened (messages younger than the window) and the
    # resend sweep. The resend sweep leaves messages last sent before the window.
    turn_lease_s: float = Field(default=20.0, gt=0)
    recovery_interval_s: float = Field(default=10.0, gt=0)
    recovery_window_s: float = Field(default=600.0, gt=0)
    # No turn may run longer than this, whatever the LLM does.
    turn_deadline_s: float = Field(default=300.0, gt=0)

    # Health checks must answer quickly even when a dependency hangs.
    health_timeout_s: float = Field(default=1.0, gt=0)

    # Where `make run` keeps embedded PostgreSQL / Redis data.
    data_dir: str = "data"

    log_level: str = "INFO"
    # "json": one JSON object per line (for log shippers); "text": for people.
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "login_rate_limit",
        "register_rate_limit",
        "message_rate_limit",
        "message_address_rate_limit",
    )
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "none":
            return ""  # no limit
        if value:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit (e.g. '10/minute' or '5/second;100/hour')"
                ) from None
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.app_env == "production" and (
            not self.jwt_secret.strip() or self.jwt_secret == DEV_JWT_SECRET
        ):
            raise ValueError("JWT_SECRET must be set to a private value when APP_ENV=production")
        if self.app_env == "production" and len(self.jwt_secret) < MIN_PRODUCTION_SECRET_LENGTH:
            raise ValueError(
                f"JWT_SECRET must be at least {MIN_PRODUCTION_SECRET_LENGTH} characters "
                "when APP_ENV=production"
            )
        return self

    @property
    def sqlalchemy_database_url(self) -> str:
        """DATABASE_URL for SQLAlchemy, always through psycopg2 (SQLAlchemy 2.1
        would otherwise pick psycopg 3 for a plain postgresql:// URL)."""
        url = self.database_url
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+psycopg2://" + url[len(scheme) :]
        return url

    @property
    def context_window_tokens(self) -> int:
        """LLM_CONTEXT_WINDOW_TOKENS, or the configured model's known window."""
        from common.llm.context_window import known_context_window

        return self.llm_context_window_tokens or known_context_window(self.llm_model)

    @property
    def prompt_budget_tokens(self) -> int:
        """What the prompt may take of the window: the rest is the answer's room."""
        from common.llm.context_window import DEFAULT_ANSWER_ROOM_TOKENS

        window = self.context_window_tokens
        room = self.llm_max_answer_tokens or min(DEFAULT_ANSWER_ROOM_TOKENS, window // 4)
        return max(0, window - room)

    @property
    def llm_fallback_enabled(self) -> bool:
        return bool(self.llm_fallback_base_url or self.llm_fallback_model)

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allowed_origins.split(",") if o.strip()]


class ConfigurationError(RuntimeError):
    """The environment holds settings the process must not run with."""


def _describe(error: dict) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in error["loc"]).upper()
    return f"{field}: {message}" if field else message


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; ConfigurationError, naming every
    problem, if the environment is invalid (a web node or worker then refuses
    to start)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigurationError(f"Refusing to start: {problems}") from None
