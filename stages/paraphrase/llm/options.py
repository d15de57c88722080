"""Paraphraser options (task YAML `paraphraser_options` and `--paraphraser-option KEY=VALUE`).

Values from the command line arrive as strings, so every field accepts its string form; unknown
names are refused so a typo never silently falls back to a default.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from schemas.errors import UserError


class LLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None  # read the key from this variable instead of the default ones
    prompt: Literal["mt", "sql", "semparse"] | None = None  # default: from the task kind
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5
    backoff: float = 1.0  # first retry delay, doubling up to backoff_max
    backoff_max: float = 60.0
    batch_size: int | None = None  # sentences per request (hf-local: per generate call)
    temperature: float | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    max_output_tokens: int | None = None
    json_mode: bool = True  # openai: response_format json_object (turn off for servers without it)
    max_cost: float | None = None  # USD
    price_in: float | None = None  # USD per 1M input tokens, overrides the table
    price_out: float | None = None
    cos_band: tuple[float, float] | None = None
    dry_run: bool = False
    accept_failures: bool = False  # build on even if some items failed for transient reasons
    # hf-local
    model_path: str | None = None
    device: str | None = None
    max_new_tokens: int = 512
    seed: int = 0

    @field_validator("cos_band", mode="before")
    @classmethod
    def _band(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
        if value is not None and (len(value) != 2 or float(value[0]) > float(value[1])):
            raise ValueError("give two numbers low,high with low <= high, e.g. 0.5,0.98")
        return value

    @field_validator("concurrency", "max_retries", "max_new_tokens")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0")
        return value


def parse_options(backend: str, options: dict[str, Any]) -> LLMOptions:
    try:
        return LLMOptions.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors())
        allowed = ", ".join(LLMOptions.model_fields)
        raise UserError(f"paraphraser {backend!r} options: {problems}; known options: {allowed}") from None
