"""`pipeline export`: every split as a Parquet config that `datasets.load_dataset` reads back exactly,
a card the Hub's card classes parse, and nothing of the builder's machine in what is written."""
from __future__ import annotations

import getpass
import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.export import KEY_LIKE
from schemas.errors import UserError
from pipeline.store import SPLIT_FOLDERS, load_split
from tests.conftest import build_local_mt, run_pipeline

CONFIGS = tuple(SPLIT_FOLDERS.values())


def export(version: Path, out: Path, *extra: str) -> Path:
    code, stdout, stderr = run_pipeline("export", str(version), "--out", str(out), *extra)
    assert code == 0, stderr
    assert Path(stdout.strip()) == out
    return out


@pytest.fixture(scope="module")
def mt_version(tmp_path_factory) -> Path:
    return build_local_mt(tmp_path_factory.mktemp("mt"))


def assert_round_trip(version: Path, exported: Path, cache: Path) -> None:
    assert_round_trip_of(version, exported, CONFIGS, cache)


def assert_round_trip_of(version: Path, exported: Path, configs, cache: Path) -> None:
    import datasets

    for config in configs:
        loaded = datasets.load_dataset(str(exported), config, cache_dir=str(cache))
        (split,) = loaded.values()
        original = load_split(version / config)
        assert split.features == original.features, config
        assert split.to_list() == original.to_list(), config


def test_align_synth_round_trip_for_every_config(align_synth_version, tmp_path):
    assert_round_trip(align_synth_version, export(align_synth_version, tmp_path / "hub"), tmp_path / "cache")


def test_mt_round_trip_for_every_config(mt_version, tmp_path):
    assert_round_trip(mt_version, export(mt_version, tmp_path / "hub"), tmp_path / "cache")


def test_card_declares_configs_features_and_metadata(align_synth_version, tmp_path):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(export(align_synth_version, tmp_path / "hub", "--repo-id", "me/demo") / "README.md")
    data = card.data.to_dict()
    assert [c["config_name"] for c in data["configs"]] == list(CONFIGS)
    assert data["configs"][3]["data_files"] == [{"split": "train", "path": "data/train-contrastive/*.parquet"}]
    infos = {info["config_name"]: info for info in data["dataset_info"]}
    assert set(infos) == set(CONFIGS)
    examples = next(f for f in infos["train-contrastive"]["features"] if f["name"] == "examples")
    assert {f["name"] for f in examples["list"]} >= {"id", "source", "target", "origin", "bm25", "cosine"}
    assert infos["probe"]["splits"][0]["num_examples"] == len(load_split(align_synth_version / "probe"))
    assert data["license"] == ["cc0-1.0"] and "ictrain" in data["tags"] and data["language"] == ["en"]
    assert data["source_datasets"] == ["original"] and data["size_categories"] and data["pretty_name"]
    assert data["task_categories"] == ["text-generation"]
    version = align_synth_version.resolve().name
    assert f'load_dataset("me/demo", "train-contrastive", split="train", revision="{version}")' in card.text
    assert "## Stages" in card.text and "load_from_disk" not in card.text


def test_license_comes_from_the_sources_and_can_be_overridden(mt_version, tmp_path):
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(export(mt_version, tmp_path / "a") / "README.md").data
    assert data.license == ["unknown"]  # every split from a local file: its terms are not known
    assert data.language == ["en", "hi"] and "translation" in data.task_categories
    data = DatasetCard.load(export(mt_version, tmp_path / "b", "--license", "cc-by-4.0") / "README.md").data
    assert data.license == ["cc-by-4.0"]
    code, _, err = run_pipeline("export", str(mt_version), "--out", str(tmp_path / "c"), "--license", "CC BY")
    assert code == 2 and "--license 'CC BY'" in err and not (tmp_path / "c").exists()


def test_license_ids_of_declared_source_texts():
    from pipeline.hub_card import license_id

    assert license_id("CC BY-SA 4.0; gated: accept its conditions on the Hub") == "cc-by-sa-4.0"
    assert license_id("CC BY-NC 4.0") == "cc-by-nc-4.0"
    assert license_id("Europarl terms (the Hub card states none)") == "other"
    assert license_id(None) == "unknown"


def test_nothing_of_the_machine_leaks_into_the_export(mt_version, tmp_path):
    exported = export(mt_version, tmp_path / "hub")
    machine = [str(tmp_path), str(mt_version.parent.parent.parent), str(Path.home())]
    user = getpass.getuser()
    import pyarrow.parquet as pq

    for path in exported.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".parquet":  # compressed: read the values themselves
            text = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
        assert not any(place in text for place in machine), path
        assert not re.search(rf"\b{re.escape(user)}\b", text), path
        assert not KEY_LIKE.search(text), path
        assert not re.search(r"(?<![\w.])/(?:tmp|home|root|Users)/", text), path


def test_export_refuses_a_folder_that_is_not_an_export(align_synth_version, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    code, _, err = run_pipeline("export", str(align_synth_version), "--out", str(tmp_path))
    assert code == 2 and "not an earlier export" in err and (tmp_path / "keep.txt").exists()
    code, _, err = run_pipeline("export", str(tmp_path), "--out", str(tmp_path / "x"))
    assert code == 2 and "not a version folder" in err


def test_large_splits_are_written_in_ordered_shards(align_synth_version, tmp_path):
    import datasets

    from pipeline.export import write_shards

    original = load_split(align_synth_version / "eval")
    shards = write_shards(original, tmp_path / "eval", "test", max_bytes=original.data.table.nbytes // 3)
    files = sorted(str(p) for p in (tmp_path / "eval").glob("*.parquet"))
    assert shards >= 3 and len(files) == shards
    loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "c"))
    assert loaded["id"] == original["id"]


def test_a_key_in_the_build_options_stops_the_export(align_synth_version, tmp_path):
    copy = tmp_path / "version"
    shutil.copytree(align_synth_version.resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["paraphraser_options"] = {"api_key": "sk-" + "a1B2" * 8}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_pipeline("export", str(copy), "--out", str(tmp_path / "hub"))
    assert code == 2 and "looks like an API key" in err and "a1B2a1B2" not in err
    assert not (tmp_path / "hub").exists()


def test_machine_paths_in_an_older_manifest_are_cut_to_file_names(align_synth_version, tmp_path):
    copy = tmp_path / "version"
    shutil.copytree(align_synth_version.resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["paraphraser_options"] = {"file": str(tmp_path / "mine" / "paraphrases.jsonl")}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    exported = export(copy, tmp_path / "hub")
    text = (exported / "manifest.json").read_text() + (exported / "README.md").read_text()
    assert "paraphrases.jsonl" in text and str(tmp_path) not in text


def test_an_empty_split_gets_no_config_and_the_trainer_says_why(tmp_path):
    from huggingface_hub import DatasetCard

    from tests.conftest import build_small
    from trainer.data import load_split as trainer_split, open_version

    version = build_small(tmp_path / "runs", "--tau", "2")  # no target passes: train-similar is empty
    exported = export(version, tmp_path / "hub")
    card = DatasetCard.load(exported / "README.md")
    names = [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert names == [c for c in CONFIGS if c != "train-similar"] and not (exported / "data/train-similar").exists()
    assert "Empty in this build, so not configs: train-similar." in card.text
    assert_round_trip_of(version, exported, names, tmp_path / "cache")
    with pytest.raises(UserError, match="has 0 rows: the build's --tau 2"):
        trainer_split(open_version(exported), "train-similar")
