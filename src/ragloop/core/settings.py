"""Settings, read from ``RAGLOOP_*`` environment variables and validated at start-up.

Build one ``Settings`` in the CLI command or ``create_app`` and pass it down; nothing reads the
environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragloop.core.errors import ConfigError
from ragloop.core.fusion import FusionRecipe

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every knob of ragloop; each field maps to ``RAGLOOP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RAGLOOP_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(Path("./ragloop-data"), description="Catalog, Chroma and models.")
    catalog_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/catalog.sqlite."
    )
    chroma_url: str | None = Field(
        None, description="http(s)://host:port of a Chroma server; default embedded Chroma."
    )
    embedder: str = Field(
        DEFAULT_EMBEDDER,
        description="Base embedding model: a registered name or a local model directory.",
    )
    device: str = Field("cpu", description="torch device for the embedder.")
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="Embedder runtime; auto: the fastest path that keeps quality on this CPU.",
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="auto: chosen with the backend; bf16 is torch (bf16 weights), int8 ONNX only.",
    )
    embed_batch_size: int = Field(32, ge=1, le=4096)
    chunk_tokens: int = Field(256, ge=16, le=8192, description="Target chunk size in tokens.")
    chunk_overlap: int = Field(32, ge=0, le=4096, description="Overlap between chunks, tokens.")
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped.")
    hnsw_ef_search: int = Field(128, ge=10, le=4096)
    hnsw_ef_construction: int = Field(200, ge=10, le=4096)
    hnsw_max_neighbors: int = Field(32, ge=4, le=512)

    # --- reading files and web pages (ingest/loaders, ingest/web_fetch.py) ------------------
    json_text_field: str = Field(
        "text", min_length=1, description="The field of a plain JSON/JSONL record holding its text."
    )
    max_file_records: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Records (rows) of one CSV, spreadsheet or plain JSON file at most.",
    )
    max_file_record_chars: int = Field(
        64 * 2**20,
        ge=1,
        le=1 << 40,
        description="Characters of text the records of one such file may make at most.",
    )
    web_allow_private: bool = Field(
        False,
        description="Let crawls started through the API (POST /v1/sources/web) reach loopback, "
        "private, link-local and other non-public addresses.",
    )
    web_allowed_hosts: str = Field(
        "",
        description="Comma-separated hosts (host or host:port) such crawls may reach whatever "
        "their addresses.",
    )

    # --- answering -------------------------------------------------------------------------
    generator: str = Field(
        "auto",
        min_length=1,
        description="A registered generator (anthropic, openai, extractive, or an entry point); "
        "auto: anthropic if ANTHROPIC_API_KEY, else openai if URL, else extractive. Checked "
        "against the generator registry at start-up (check_generator_setting).",
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("RAGLOOP_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    anthropic_model: str = Field("claude-sonnet-5-5", description="Claude model for answers.")
    anthropic_base_url: str | None = Field(None, description="Override the Anthropic API URL.")
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible server, e.g. http://localhost:11434/v1 (Ollama)."
    )
    openai_api_key: SecretStr | None = Field(None)
    openai_model: str = Field(
        "llama3.1", description="Model name sent to the OpenAI-compatible server."
    )
    generator_timeout_s: float = Field(30.0, gt=0, le=600)
    max_answer_tokens: int = Field(1024, ge=16, le=32768)

    # --- follow-up questions (core/condense.py) ---------------------------------------------
    condense: str = Field(
        "auto",
        min_length=1,
        description="How a follow-up in a conversation is made stand-alone before retrieval: "
        "rule (offline), llm (the configured LLM generator, the rule on failure), off, a "
        "condenser registered by a plugin, or auto (llm when an LLM generator is configured, "
        "else rule).",
    )
    condense_max_tokens: int = Field(
        96, ge=8, le=1024, description="Token budget of the LLM's stand-alone question."
    )
    condense_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Timeout of the LLM rewrite; past it the rule is used."
    )

    # --- learning loop ---------------------------------------------------------------------
    gate_margin: float = Field(
        0.005, ge=0, le=1, description="nDCG@10 gain a candidate needs to be promoted."
    )
    gate_general_dataset: str | None = Field(
        None,
        description="A BEIR folder the gate scores for forgetting (retrain option "
        "general_dataset overrides it); unset: neighbour agreement on untrained chunks.",
    )
    keep_versions: int = Field(3, ge=1, le=100, description="Model versions kept for rollback.")
    retrain_every_hours: float = Field(0, ge=0, description="Scheduler: retrain every N hours.")
    retrain_after_misses: int = Field(0, ge=0, description="Scheduler: retrain after M misses.")
    retrain_check_s: float = Field(
        60.0, gt=0, le=3600, description="Scheduler: seconds between looks at its triggers."
    )
    lease_ttl_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a lease in the catalog (writer, retrain job, scheduler) outlives "
        "its holder's last heartbeat (renewed every third of it).",
    )

    # --- query service ---------------------------------------------------------------------
    miss_score_threshold: float = Field(
        0.40,
        ge=-1.0,
        le=1.0,
        description="Set explicitly, a query whose best dense cosine is below this is a "
        "low_score miss for every model version. Unset, each version uses its own threshold, "
        "calibrated on its corpus (core/calibration.py, docs/service.md); this value is only "
        "the fallback while a corpus is too small to calibrate.",
    )
    miss_calibration_sample: int = Field(
        200,
        ge=10,
        le=5000,
        description="Chunks sampled to calibrate a version's miss flags (one question each).",
    )
    miss_overlap_depth: int = Field(
        5,
        ge=1,
        le=100,
        description="no_overlap miss: the dense and the lexical top-N share no chunk (hybrid).",
    )

    retrieval: Literal["dense", "lexical", "hybrid"] = Field(
        "hybrid",
        description="dense (vectors), lexical (BM25 over SQLite FTS5) or hybrid (both, fused).",
    )
    fusion_method: Literal["rrf", "weighted"] = Field(
        FusionRecipe.method,
        description="Hybrid fusion for versions without their own recipe: reciprocal-rank "
        "fusion or a weighted sum of min-max normalised scores. Set explicitly, it overrides "
        "every version's recipe (as do the other RAGLOOP_FUSION_* settings).",
    )
    fusion_rrf_k: int = Field(FusionRecipe.rrf_k, ge=1, le=100_000, description="RRF constant k.")
    fusion_dense_weight: float = Field(
        FusionRecipe.dense_weight,
        ge=0.0,
        le=1.0,
        description="Weighted fusion: weight of the dense side.",
    )
    fusion_depth: int = Field(
        FusionRecipe.depth,
        ge=1,
        le=1000,
        description="Hybrid: candidates read from each side (at least k).",
    )
    default_k: int = Field(5, ge=1, le=100)
    query_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="Query embeddings kept per process (LRU); 0: off."
    )
    query_batch_size: int = Field(
        16,
        ge=1,
        le=256,
        description="Concurrent queries encoded in one pass at most (1: each alone).",
    )
    max_k: int = Field(50, ge=1, le=100)
    max_question_chars: int = Field(2000, ge=10, le=100_000)
    max_upload_files: int = Field(20, ge=1, le=1000)
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        le=1 << 40,
        description="Largest request body on every route but uploads, checked before parsing; "
        "uploads may be RAGLOOP_MAX_UPLOAD_FILES x RAGLOOP_MAX_FILE_MB plus 1 MiB.",
    )
    open_writes: bool = Field(
        False,
        description="Let anyone upload, re-ingest and delete documents while no API key "
        "exists (a local demo); by default writes need an API key or the admin token.",
    )
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin routes.")
    api_keys: str = Field("", description="Comma-separated client API keys (plaintext).")
    cors_origins: str = Field("", description="Comma-separated allowed origins, or *.")

    # --- rate limits: per API key, per client address when anonymous; 0: off ----------------
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Requests per minute one caller may make on the client routes (query, "
        "feedback, search, chat, documents, embeddings), in bursts of up to as many.",
    )
    write_rate_limit_per_minute: int = Field(
        30,
        ge=0,
        le=1_000_000,
        description="Uploads, re-uploads and deletes per minute per caller (the admin token is "
        "exempt).",
    )
    embed_rate_limit_per_minute: int = Field(
        120, ge=0, le=1_000_000, description="/v1/embeddings requests per minute per caller."
    )
    embed_bytes_per_minute: int = Field(
        4 * 1024 * 1024,
        ge=0,
        le=1 << 40,
        description="/v1/embeddings request-body bytes per minute per caller; one request over "
        "it is admitted when the caller's budget is full, and the excess is owed.",
    )
    gate_datasets_root: Path | None = Field(
        None,
        description="The only folder whose BEIR sets a retrain request may name as "
        "gate_dataset or general_dataset; default <data dir>/gate-datasets.",
    )

    # --- training on other hosts (finetune/remote.py, docs/deployment.md) -------------------
    training: Literal["local", "remote"] | None = Field(
        None,
        description="local: a retrain trains in a subprocess of the server; remote: it is "
        "queued for `ragloop worker` on another host. Default: remote when "
        "RAGLOOP_TRAINING_QUEUE is set, else local.",
    )
    training_queue: str | None = Field(
        None,
        description="PostgreSQL URL of the training queue; default the catalog's URL when the "
        "catalog is in PostgreSQL.",
    )
    shared_root: Path | None = Field(
        None,
        description="The folder every replica and training host mounts at the same path, "
        "holding model versions, uploads and job folders; default the data dir.",
    )
    training_lease_seconds: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="A remote training job whose worker sends no heartbeat for this long "
        "fails; workers beat at least four times per lease.",
    )

    @field_validator("chroma_url")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://localhost:8001")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_backend(self) -> Settings:
        if self.precision == "int8" and self.backend == "torch":
            raise ValueError(
                "RAGLOOP_PRECISION=int8 runs only on ONNX Runtime: set RAGLOOP_BACKEND=onnx "
                "(or auto), or use precision fp32 or bf16 with torch"
            )
        if self.precision == "bf16" and self.backend == "onnx":
            raise ValueError(
                "RAGLOOP_PRECISION=bf16 is a torch path: with RAGLOOP_BACKEND=onnx use "
                "fp32 or int8 (or auto)"
            )
        if self.backend == "onnx" and self.device != "cpu":
            raise ValueError(
                f"RAGLOOP_BACKEND=onnx runs on the CPU, but RAGLOOP_DEVICE is {self.device!r}"
            )
        return self

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) must not exceed max_k ({self.max_k})")
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        return self

    @property
    def api_key_list(self) -> tuple[str, ...]:
        """Client keys from ``RAGLOOP_API_KEYS``."""
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def web_allowed_host_list(self) -> tuple[str, ...]:
        """Hosts from ``RAGLOOP_WEB_ALLOWED_HOSTS``, lower case."""
        return tuple(h.strip().lower() for h in self.web_allowed_hosts.split(",") if h.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        """Allowed CORS origins."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def default_fusion(self) -> FusionRecipe:
        """The fusion recipe of a version that carries none."""
        return FusionRecipe(
            method=self.fusion_method,
            rrf_k=self.fusion_rrf_k,
            dense_weight=self.fusion_dense_weight,
            depth=self.fusion_depth,
        )

    def for_worker(self) -> dict[str, Any]:
        """The settings set explicitly here that a training worker must share (retrieval, fusion,
        gate, model and catalog choices), for its job file: a worker on another host, or one
        started by code with its own ``Settings``, then gates as this server serves. Secrets and
        what belongs to the worker's own host (its device, the data dir it is handed) stay out."""
        return self.model_dump(mode="json", exclude_unset=True, exclude=_NOT_FOR_WORKERS)

    @property
    def fusion_overrides(self) -> dict[str, Any]:
        """Recipe fields set explicitly (environment or arguments): they beat any version's."""
        fields = {"fusion_method", "fusion_rrf_k", "fusion_dense_weight", "fusion_depth"}
        return {
            name.removeprefix("fusion_"): getattr(self, name)
            for name in sorted(fields & self.model_fields_set)
        }

    @property
    def miss_threshold_override(self) -> float | None:
        """The low_score threshold when ``RAGLOOP_MISS_SCORE_THRESHOLD`` is set explicitly (it
        beats every version's calibration), else None."""
        if "miss_score_threshold" in self.model_fields_set:
            return self.miss_score_threshold
        return None

    @property
    def artifacts_root(self) -> Path:
        """Where model versions, uploads and job folders live: ``RAGLOOP_SHARED_ROOT`` (a
        folder every replica and worker mounts at the same path) or the data dir."""
        return self.shared_root or self.data_dir

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files are kept (they are the documents' source files)."""
        return self.artifacts_root / "uploads"

    @property
    def resolved_catalog_url(self) -> str:
        """The catalog URL, defaulting to SQLite inside the data dir."""
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{(self.data_dir / 'catalog.sqlite').resolve()}"

    @property
    def chroma_path(self) -> Path:
        """Where embedded Chroma keeps its files."""
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        """Where fine-tuned model versions are written."""
        return self.artifacts_root / "models"

    @property
    def max_file_bytes(self) -> int:
        """The per-file size limit in bytes."""
        return int(self.max_file_mb * 1024 * 1024)


#: Settings a job file never carries: secrets, and what the worker's own host decides.
_NOT_FOR_WORKERS = {
    "anthropic_api_key",
    "openai_api_key",
    "admin_token",
    "api_keys",
    "device",
    "data_dir",
}


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (CLI flags).

    Validation errors become one ``ConfigError`` whose message names each bad variable, so the
    CLI and the server fail at start-up with a readable line rather than a pydantic dump.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValueError as exc:
        errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [])()
        if errors:
            parts = [
                f"RAGLOOP_{'_'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {e['msg']}"
                for e in errors
            ]
            raise ConfigError("invalid settings: " + "; ".join(parts)) from None
        raise ConfigError(f"invalid settings: {exc}") from None
