"""Reading a built dataset version, and the length check that runs before any training.

The version folder is the only contract with the pipeline: `manifest.json` plus one
`datasets.load_from_disk` folder per split. Rows whose completion would not fit in `max_length`
are dropped here, before TRL sees them, because truncating them would either cut the answer or,
worse, leave a row whose every label is masked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import UserError

SPLITS = ("train-zero", "train-random", "train-similar", "train-contrastive", "eval", "probe")


@dataclass
class Version:
    """A resolved dataset version folder and its manifest."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def task(self) -> str:
        return self.manifest.get("task", "unknown")

    @property
    def version(self) -> str:
        return self.manifest.get("version", self.folder.name)

    @property
    def metric(self) -> str:
        return self.manifest.get("config", {}).get("task", {}).get("metric", "chrf")

    def identity(self) -> dict[str, Any]:
        """What a trained adapter or a report records about the data it came from."""
        return {"task": self.task, "version": self.version, "folder": str(self.folder),
                "package_version": self.manifest.get("package_version"), "metric": self.metric}


def open_version(data: str | Path) -> Version:
    """Resolve `DIR/T/<version>` or `DIR/T/latest` (a link) to a version with its manifest."""
    folder = Path(data).resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{data}: no manifest.json here; pass a version folder written by "
                        "`pipeline build` (DIR/<task>/<version> or DIR/<task>/latest)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{manifest_path}: not valid JSON ({err}); rebuild the version") from None
    return Version(folder=folder, manifest=manifest)


def load_split(version: Version, split: str):
    """One split as a `datasets.Dataset`, with a clear error when the build did not write it."""
    from datasets import load_from_disk

    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = version.folder / split
    if not path.is_dir():
        raise UserError(f"{path}: split missing from this version; rebuild it with `pipeline build`")
    return load_from_disk(str(path))


def first_items(dataset, limit: int | None):
    """Keep the rows of the first `limit` test items (target_ids) of each test set, all their
    contexts together, so a quick run still sees both the in-domain and out-of-domain sets."""
    if limit is None:
        return dataset
    sets = dataset["test_set"] if "test_set" in dataset.column_names else [""] * len(dataset)
    keep, seen = [], {}
    for index, (test_set, target_id) in enumerate(zip(sets, dataset["target_id"])):
        chosen = seen.setdefault(test_set, set())
        if target_id not in chosen and len(chosen) >= limit:
            continue
        chosen.add(target_id)
        keep.append(index)
    return dataset.select(keep)


@dataclass
class LengthReport:
    """Token-length statistics of a split and what the `max_length` cut costs."""

    rows: int
    kept: int
    dropped: int
    max_length: int
    total_tokens: dict[str, float] = field(default_factory=dict)
    completion_tokens: dict[str, float] = field(default_factory=dict)

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "kept": self.kept, "dropped": self.dropped,
                "dropped_share": round(self.dropped_share, 6), "max_length": self.max_length,
                "total_tokens": self.total_tokens, "completion_tokens": self.completion_tokens}


def _summary(lengths: np.ndarray) -> dict[str, float]:
    if lengths.size == 0:
        return {}
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2),
            "median": float(np.median(lengths)), "p95": float(np.percentile(lengths, 95)),
            "max": int(lengths.max())}


def token_lengths(tokenizer, prompts: list[str], completions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Lengths exactly as TRL will see them: prompt + completion + EOS, special tokens included."""
    eos = tokenizer.eos_token or ""
    full = tokenizer([p + c + eos for p, c in zip(prompts, completions)])["input_ids"]
    prompt_only = tokenizer(list(prompts))["input_ids"]
    total = np.array([len(ids) for ids in full], dtype=np.int64)
    completion = total - np.array([len(ids) for ids in prompt_only], dtype=np.int64)
    return total, completion


def fit_to_length(dataset, tokenizer, max_length: int, max_drop_share: float):
    """Drop rows longer than `max_length`; refuse when that loses more than `max_drop_share`."""
    total, completion = token_lengths(tokenizer, dataset["prompt"], dataset["completion"])
    fits = total <= max_length
    report = LengthReport(rows=len(total), kept=int(fits.sum()), dropped=int((~fits).sum()),
                          max_length=max_length, total_tokens=_summary(total),
                          completion_tokens=_summary(completion))
    if report.rows == 0:
        raise UserError("the training split is empty; rebuild the version or check --regime")
    if report.dropped_share > max_drop_share:
        raise UserError(
            f"{report.dropped} of {report.rows} rows ({report.dropped_share:.1%}) are longer than "
            f"max_length={max_length} tokens (longest {report.total_tokens['max']}); raise "
            f"--max-length or --max-drop-share (now {max_drop_share:.1%})")
    kept = dataset.select(np.flatnonzero(fits).tolist()) if report.dropped else dataset
    return kept, report


def training_rows(version: Version, regime: str, limit: int | None = None):
    """The prompt/completion columns of `train-<regime>`: all TRL needs for completion-only loss."""
    dataset = load_split(version, f"train-{regime}")
    missing = {"prompt", "completion"} - set(dataset.column_names)
    if missing:
        raise UserError(f"{version.folder}/train-{regime}: missing columns {sorted(missing)}; "
                        "rebuild the version with the current pipeline")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.select_columns(["prompt", "completion"])
