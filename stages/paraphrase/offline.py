"""Backends that need no network: `none`, `file` (precomputed JSONL) and `align-synth`'s reshuffle."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import UserError
from stages.paraphrase.base import ParaphraseBackend, ParaphraseOutput, register
from stages.paraphrase.slots import parse_request
from stages.text import normalize_text


@register
class NoParaphrases(ParaphraseBackend):
    """No paraphrases: the build falls back to `near` and counts every fallback."""

    name = "none"

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name}

    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        return ParaphraseOutput(paraphrases=[[] for _ in sources])


@register
class FileParaphrases(ParaphraseBackend):
    """Precomputed paraphrases: JSONL lines `{"source": ..., "paraphrases": [...]}`, matched on the
    normalised source (for semantic parsing, the utterance)."""

    name = "file"

    def _path(self) -> Path:
        path = self.options.get("path")
        if not path:
            raise UserError("paraphraser 'file' needs a path: --paraphraser-option path=FILE.jsonl")
        return Path(path)

    def identity(self) -> dict[str, Any]:
        path = self._path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"
        return {"backend": self.name, "sha256": digest}

    def check_ready(self) -> None:
        if not self._path().exists():
            raise UserError(f"{self._path()}: paraphrase file not found; give an existing JSONL file")

    def _read(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        path = self._path()
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = normalize_text(str(record["source"]))
                    values = [str(v) for v in record["paraphrases"]]
                except (ValueError, KeyError, TypeError) as exc:
                    raise UserError(f"{path}:{line_no}: expected a JSON object with 'source' and a "
                                    f"'paraphrases' list ({exc.__class__.__name__}); fix or remove that line")
                table.setdefault(key, []).extend(values)
        return table

    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        table = self._read()
        out = ParaphraseOutput(paraphrases=[])
        for source in sources:
            if self.context.task_kind == "semparse":  # a request: the file is keyed by its utterance
                source = parse_request(source)[0]
            found = table.get(normalize_text(source), [])[:n]
            if not found:
                out.failures["not in file"] += 1
            out.paraphrases.append(found)
        return out


@register
class SymbolReshuffle(ParaphraseBackend):
    """align-synth: a reshuffle of the input's symbols has the same output (the output follows a
    fixed order of the symbol set), so it is a label-preserving paraphrase by construction."""

    name = "align-synth"

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "version": 1}

    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        out = ParaphraseOutput(paraphrases=[])
        for source in sources:
            symbols = source.split()
            seed = int.from_bytes(hashlib.sha256(source.encode("utf-8")).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            found: list[str] = []
            for _ in range(20 * n):
                candidate = " ".join(rng.permutation(symbols).tolist())
                if candidate != source and candidate not in found:
                    found.append(candidate)
                if len(found) == n:
                    break
            if not found:
                out.failures["single symbol: no reshuffle"] += 1
            out.paraphrases.append(found)
        return out
