"""Runtime settings, read once at the edge (the CLI or the app factory) and passed down.

Every field can be set from the environment with the ``MLSD_`` prefix (``MLSD_REDIS_URL``,
``MLSD_PORT``...). Library code takes a :class:`Settings` argument; it never reads ``os.environ``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where to serve, which online store to use, and the serving limits."""

    model_config = SettingsConfigDict(env_prefix="MLSD_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None, description="Redis URL for the online store; in-process store when unset."
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server binds to.")
    log_level: str = Field(default="info", description="Log level of the server and the package.")
    max_candidates: int = Field(
        default=500, ge=1, description="Most candidates one scoring request may carry."
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        description="Intra-op threads for model inference in the server: one request is a small "
        "batch, so one thread avoids contention; scale out with more server processes.",
    )
