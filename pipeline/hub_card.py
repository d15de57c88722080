"""The card of an exported version: Hub metadata (configs, features, licence, languages) in YAML
front matter over the build card, so `datasets.load_dataset(repo, config)` and the Hub viewer
find every split without knowing how ictrain lays out its folders."""
from __future__ import annotations

import re
from typing import Any

from schemas.errors import UserError

# The datasets split each config holds: training sets are `train`, the scored sets `test`.
CONFIG_SPLIT = {"train-zero": "train", "train-random": "train", "train-similar": "train",
                "train-contrastive": "train", "eval": "test", "probe": "test"}
GENERATED_LICENSE = "cc0-1.0"  # align-synth and other generated tasks: made in code, no third-party rights
LANGUAGE_CODES = {"english": "en", "german": "de", "lithuanian": "lt", "hindi": "hi", "tamil": "ta",
                  "french": "fr", "spanish": "es", "thai": "th", "chinese": "zh", "japanese": "ja"}
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
SIZE_BOUNDS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
               (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"))


def license_id(text: str | None) -> str:
    """A Hub licence identifier for a source's free-text licence ("CC BY-SA 4.0; gated ..." ->
    cc-by-sa-4.0); `other` when the text names no licence the Hub knows, `unknown` when empty."""
    if not text:
        return "unknown"
    cc = re.search(r"\bCC[ -]BY((?:[ -](?:SA|NC|ND))*)[ -](\d\.\d)", text, re.IGNORECASE)
    if cc:
        parts = re.findall(r"SA|NC|ND", cc.group(1).upper())
        return "-".join(["cc-by", *(p.lower() for p in parts), cc.group(2)])
    for pattern, known in ((r"\bCC0\b", "cc0-1.0"), (r"\bMIT\b", "mit"), (r"\bApache\b", "apache-2.0")):
        if re.search(pattern, text, re.IGNORECASE):
            return known
    return "other"


def source_licences(manifest: dict[str, Any]) -> dict[str, str]:
    """Per split, the licence text of the source it was built from: the task's declared licence
    for a declared source, "" for a local file the user supplied (its terms are unknown here)."""
    from pipeline.tasks import load_task

    inputs = manifest.get("inputs", {})
    if "generator" in inputs:
        return {}
    try:
        task = load_task(manifest["task"])
    except UserError:  # a task YAML of the builder's own: its licences are not in the manifest
        task = None
    out = {}
    for split, used in inputs.items():
        if not used or split == "databases":
            continue
        spec = getattr(task, split, None) if task else None
        out[split] = "" if "file" in used and not (spec and spec.path) else (spec.licence or "" if spec else "")
    return out


def card_license(manifest: dict[str, Any], override: str | None) -> list[str]:
    if override is not None:
        if not LICENSE_ID.match(override):
            raise UserError(f"--license {override!r}: give a Hub licence identifier such as cc-by-4.0, "
                            "apache-2.0 or other (lower case, no spaces)")
        return [override]
    licences = source_licences(manifest)
    if not licences:
        return [GENERATED_LICENSE]
    return sorted({license_id(text) for text in licences.values()})


def languages(task: dict[str, Any]) -> list[str]:
    """ISO 639-1 codes: English (every prompt's instructions) plus the task's source and target."""
    codes = ["en"]
    for name in (task.get("source_lang"), task.get("target_lang")):
        code = LANGUAGE_CODES.get((name or "").lower())
        if code and code not in codes:
            codes.append(code)
    return codes


def source_datasets(manifest: dict[str, Any]) -> list[str]:
    """The Hub datasets and corpora the splits were drawn from; `original` for generated data."""
    found = []
    for used in manifest.get("inputs", {}).values():
        if not isinstance(used, dict):
            continue
        if "hub" in used:
            found.append(f"extended|{used['hub']['path']}")
        elif "opus" in used:
            found.append(f"extended|opus-{used['opus']['corpus']}")
    return sorted(set(found)) or ["original"]


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_BOUNDS if rows < bound), "n>1T")  # the Hub's own size classes


def loading_section(repo_id: str | None, version: str, configs: list[str]) -> list[str]:
    """How to load each config, with the version pinned as a revision; an empty split has none."""
    repo = repo_id or "OWNER/REPO"
    lines = ["## Loading", "", "Each split of the build is a config of this repository; the version is a revision tag.", "",
             "```python", "from datasets import load_dataset", ""]
    lines += [f'{config.replace("-", "_")} = load_dataset("{repo}", "{config}", split="{split}", '
              f'revision="{version}")' for config, split in CONFIG_SPLIT.items() if config in configs]
    empty = [config for config in CONFIG_SPLIT if config not in configs]
    return lines + ["```", ""] + ([f"Empty in this build, so not configs: {', '.join(empty)}.", ""] if empty else [])


def licence_section(manifest: dict[str, Any], licences: list[str]) -> list[str]:
    texts = source_licences(manifest)
    lines = ["## Licence", "", f"Declared: {', '.join(licences)}."]
    lines += [f"- {split}: {text or 'a local file supplied by the builder (terms not recorded)'}"
              for split, text in texts.items()]
    return lines + [""]


def card_metadata(manifest: dict[str, Any], infos: dict[str, Any], licences: list[str]):
    """`DatasetCardData` with configs (data_files per config), dataset_info (features, counts)
    and the descriptive fields the Hub indexes."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    task = manifest["config"]["task"]
    categories = ["translation", "text-generation"] if task.get("kind") == "mt" else ["text-generation"]
    rows = sum(split.num_examples for info in infos.values() for split in info.splits.values())
    configs = [{"config_name": config, "data_files": [{"split": split, "path": f"data/{config}/*.parquet"}]}
               for config, split in CONFIG_SPLIT.items() if config in infos]
    data = DatasetCardData(license=licences, language=languages(task), task_categories=categories,
                           tags=["ictrain", "in-context-learning", task.get("kind", "")],
                           source_datasets=source_datasets(manifest), size_categories=[size_category(rows)],
                           pretty_name=f"IC-Train {manifest['task']} {manifest['version']}", configs=configs)
    if "other" in licences:
        data.license_name = "source-terms"  # each source's own terms, listed under Licence in the card
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def hub_card(manifest: dict[str, Any], body: str, infos: dict[str, Any], license_override: str | None,
             repo_id: str | None) -> str:
    """The README.md of an export: YAML front matter, then loading, licence and the build card."""
    licences = card_license(manifest, license_override)
    data = card_metadata(manifest, infos, licences)
    extra = loading_section(repo_id, manifest["version"], list(infos)) + licence_section(manifest, licences)
    title, rest = body.split("\n", 1)
    return f"---\n{data.to_yaml()}\n---\n\n{title}\n\n" + "\n".join(extra) + rest
