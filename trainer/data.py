"""Reading a built dataset version, and the length check that runs before any training.

The version folder is the only contract with the pipeline: `manifest.json` plus one
`datasets.load_from_disk` folder per split, or, in an export (`pipeline export`, or a Hub
repository `hub:OWNER/REPO@VERSION` downloaded into the Hub cache), one Parquet folder per split
under `data/`. Rows whose completion would not fit in `max_length`
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
    reference: str = ""  # the `hub:OWNER/REPO@VERSION` it was downloaded from, if any

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
        return {"task": self.task, "version": self.version, "folder": self.reference or str(self.folder),
                "package_version": self.manifest.get("package_version"), "metric": self.metric}


HUB_PREFIX = "hub:"


def hub_snapshot(reference: str, patterns: tuple[str, ...] = ("manifest.json", "README.md")) -> Path:
    """The files of `hub:OWNER/REPO@VERSION` that match `patterns`, downloaded (once) into the
    Hugging Face cache: the manifest first, a split's Parquet files only when it is read. The
    version is the tag `pipeline publish` created, so the files are exactly those of that build."""
    repo_id, _, revision = reference[len(HUB_PREFIX):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or not revision:
        raise UserError(f"--data {reference}: expected hub:OWNER/REPO@VERSION, e.g. hub:me/ictrain-en-lt@0a1b2c3d4e5f")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                      allow_patterns=list(patterns)))
    except Exception as exc:  # not found, gated, offline: the client raises many types
        raise UserError(f"--data {reference}: download failed ({exc.__class__.__name__}); check the repository, "
                        "the version tag, HF_TOKEN for a private repository, and the network") from None


def open_version(data: str | Path) -> Version:
    """Resolve a version folder (`DIR/T/<version>`, `DIR/T/latest`), an export folder, or
    `hub:OWNER/REPO@VERSION` to a version with its manifest."""
    reference = str(data) if str(data).startswith(HUB_PREFIX) else ""
    folder = hub_snapshot(reference) if reference else Path(data).resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{data}: no manifest.json here; pass a version folder written by `pipeline build` "
                        "(DIR/<task>/<version> or DIR/<task>/latest), an export folder or hub:OWNER/REPO@VERSION")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{manifest_path}: not valid JSON ({err}); rebuild the version") from None
    return Version(folder=folder, manifest=manifest, reference=reference)


def recorded_rows(version: Version, split: str) -> int | None:
    """The row count of `split` as the build recorded it; None when the manifest does not say."""
    assemble = version.manifest.get("stages", {}).get("assemble", {})
    count = assemble.get("counters", {}).get("rows", {}).get(split.replace("-", "_"))
    return None if count is None else int(count)


def empty_split_cause(version: Version, split: str) -> str:
    """Why the build left `split` empty, named by the build option that did it."""
    tau = version.manifest.get("config", {}).get("tau")
    dropped = version.manifest.get("stages", {}).get("assemble", {}).get("dropped", {})
    if split == "train-similar" and tau is not None:
        count = sum(n for reason, n in dropped.items() if "tau" in reason)
        return (f"the build's --tau {tau} dropped {f'all {count} targets' if count else 'every target'}"
                " (mean cosine below tau); rebuild with a lower --tau or without it")
    if dropped:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items()))
        return f"the build dropped rows ({reasons}); rebuild the version with other options"
    return "the build wrote no rows here; rebuild the version with a larger pool or test set"


def empty_split_error(version: Version, split: str) -> UserError:
    return UserError(f"{split} of version {version.version} has 0 rows: "
                     f"{empty_split_cause(version, split)}")


def load_split(version: Version, split: str):
    """One split as a `datasets.Dataset`, with a clear error when the build did not write it or
    left it empty. Emptiness is read from the manifest first, so an empty split is refused before
    `datasets` is imported; a folder whose manifest does not count rows is opened and refused by
    its length."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = version.folder / split
    if version.reference and recorded_rows(version, split) != 0:
        hub_snapshot(version.reference, (f"data/{split}/*",))  # the same snapshot folder, this split added
    exported = sorted((version.folder / "data" / split).glob("*.parquet"))
    if not exported and not path.is_dir() and recorded_rows(version, split) != 0:
        raise UserError(f"{path}: split missing from this version; rebuild it with `pipeline build`")
    if recorded_rows(version, split) == 0:
        raise empty_split_error(version, split)
    if exported:
        dataset = read_parquet_split(exported)
    else:
        from pipeline.store import load_split as load_saved_split  # opens older empty splits too

        dataset = load_saved_split(path)
    if len(dataset) == 0:
        raise empty_split_error(version, split)
    return dataset


def read_parquet_split(files: list[Path]):
    """An exported split's shards, in order, as one memory-mapped `datasets.Dataset`; the features
    (nested `examples` included) come from the datasets metadata in the Parquet schema."""
    import datasets

    return datasets.Dataset.from_parquet([str(f) for f in files], keep_in_memory=False)


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
        raise UserError("no training rows to fit to --max-length; rebuild the version or check "
                        "--regime and --train-limit")
    if report.kept == 0:
        raise UserError(f"all {report.rows} rows are longer than max_length={max_length} tokens "
                        f"(shortest {report.total_tokens['min']}); raise --max-length")
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
