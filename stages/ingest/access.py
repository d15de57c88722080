"""Where ingest may fetch sources from, and with which credentials: passed in explicitly.

The CLI fills this from the environment once (`HF_ENDPOINT`, the Hub token, `ICTRAIN_OPUS_URL`);
nothing below reads the environment, so tests aim every request at a local stand-in server.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from schemas.config import DEFAULT_HUB_ENDPOINT, DEFAULT_OPUS_URL


@dataclass(frozen=True)
class SourceAccess:
    download_dir: Path  # downloaded source files, kept per commit / per archive content
    hub_endpoint: str = DEFAULT_HUB_ENDPOINT
    hub_token: str | None = field(default=None, repr=False)
    opus_url: str = DEFAULT_OPUS_URL
