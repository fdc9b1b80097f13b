"""Runtime settings, read once at the edge (the CLI or the app factory) and passed down.

Every field can be set from the environment with the ``MLSD_`` prefix (``MLSD_REDIS_URL``,
``MLSD_PORT``...). Library code takes a :class:`Settings` argument; it never reads ``os.environ``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: What an API key may do: ``read`` calls every route but the reloads, ``admin`` calls them all.
Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")


class Settings(BaseSettings):
    """Where to serve, which online store to use, and the serving limits."""

    # hide_input_in_errors: a bad MLSD_API_KEYS or MLSD_REDIS_URL must not echo its secret
    model_config = SettingsConfigDict(
        env_prefix="MLSD_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    redis_url: str | None = Field(
        default=None, description="Redis URL for the online store; in-process store when unset."
    )
    redis_socket_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait for one Redis reply before it counts failed."
    )
    redis_connect_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait for a new Redis connection."
    )
    redis_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    redis_breaker_cooldown_s: float = Field(
        default=2.0, gt=0, description="How long an open breaker refuses calls before a probe."
    )
    redis_retire_ttl_s: int = Field(
        default=300,
        ge=1,
        description="After a reload to another run, the old run's Redis keys expire this late.",
    )
    engine: Literal["local", "ray"] = Field(
        default="local",
        description="Where a run's heavy steps execute: local (in-process) or ray (Ray tasks, "
        "Ray Data and Ray Train; the ray extra).",
    )
    ray_address: str | None = Field(
        default=None,
        description="HOST:PORT of an existing Ray cluster for --engine ray; a private local Ray "
        "instance when unset.",
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
    serve_onnx: bool = Field(
        default=False,
        description="Ad click: at load, export a deep served model to ONNX and serve it with "
        "onnxruntime if it is faster on a probe request (and agrees with torch within 1e-6).",
    )
    tune_budget_s: float | None = Field(
        default=None,
        ge=0,
        description="Seconds per model for the hyper-parameter search of `mlsd run` (Optuna, on "
        "the validation split); 0 turns it off; unset: a budget per scale (tiny a few seconds).",
    )
    api_keys: Annotated[dict[str, Role], NoDecode] = Field(
        default_factory=dict,
        repr=False,
        description="API keys and their roles, sent in the X-API-Key header: "
        "'key1:admin,key2:read' or a JSON object of key to role. Roles: read (every route but "
        "the reloads), admin (all). /healthz, /readyz and the docs stay open. Unset: every route "
        "is open (a warning is "
        "logged at start-up).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body of the JSON routes, answered 413 before it is read; "
        "visual search's upload keeps its own image limit.",
    )
    log_id_salt: str | None = Field(
        default=None,
        repr=False,
        description="Secret salt of the keyed hash that replaces ids in the access log; a random "
        "one per process when unset (the hashes then match only within one process).",
    )
    track: bool = Field(
        default=False,
        description="Log every finished `mlsd run` to MLflow (as --track does; needs the track "
        "extra).",
    )
    tracking_uri: str = Field(
        default="sqlite:///runs/mlflow.db",
        description="The MLflow tracking store `mlsd run --track` logs to (any MLflow URI); "
        "setting MLSD_TRACKING_URI turns tracking on as --track does (--no-track turns it "
        "off); `mlflow ui --backend-store-uri` with the same URI shows the runs.",
    )

    @property
    def tracking_on(self) -> bool:
        """Whether ``mlsd run`` logs to MLflow without a flag: MLSD_TRACK=1, or a tracking store
        named explicitly (MLSD_TRACKING_URI)."""
        return self.track or "tracking_uri" in self.model_fields_set

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        return parse_api_keys(value) if isinstance(value, str) else value


def parse_api_keys(text: str) -> dict[str, Role]:
    """``'key1:admin,key2:read'`` (or a JSON object of key to role) as ``{key: role}``.

    Raises ``ValueError`` naming the entry (by position, never by the key itself) that is not a
    ``key:role`` pair with a known role.
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith(("{", "[")):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"MLSD_API_KEYS: malformed JSON ({exc.msg} at char {exc.pos})"
            ) from None
        if not isinstance(raw, dict):
            raise ValueError("MLSD_API_KEYS: JSON must be an object of key to role")
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    else:
        pairs = []
        for i, entry in enumerate(text.split(","), start=1):
            key, sep, role = entry.strip().rpartition(":")
            if not sep:
                raise ValueError(f"MLSD_API_KEYS: entry {i} is not 'key:role'")
            pairs.append((key.strip(), role.strip()))
    keys: dict[str, Role] = {}
    for i, (key, role) in enumerate(pairs, start=1):
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"MLSD_API_KEYS: entry {i} has an empty key or one with spaces")
        if role not in ROLES:
            raise ValueError(f"MLSD_API_KEYS: entry {i} has role {role!r}; use one of {ROLES}")
        keys[key] = "admin" if role == "admin" else "read"
    return keys
