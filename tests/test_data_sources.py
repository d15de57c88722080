"""The trainer's `--data`: a version folder, an export folder and `hub:OWNER/REPO@VERSION` give the
same rows (the Hub download is faked with the export folder: no network in tests)."""
from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import UserError
from tests.conftest import run_pipeline
from trainer.data import SPLITS, load_split, open_version, training_rows


@pytest.fixture(scope="module")
def exported(align_synth_version, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "hub"
    code, _, err = run_pipeline("export", str(align_synth_version), "--out", str(out))
    assert code == 0, err
    return out


def test_an_export_folder_reads_like_the_version_folder(align_synth_version, exported):
    built, export = open_version(align_synth_version), open_version(exported)
    assert export.version == built.version and export.metric == built.metric
    for split in SPLITS:
        ours, theirs = load_split(export, split), load_split(built, split)
        assert ours.features == theirs.features and ours.to_list() == theirs.to_list(), split
    assert training_rows(export, "contrastive", limit=5).to_list() == training_rows(built, "contrastive", limit=5).to_list()


def test_a_hub_reference_downloads_the_tagged_version(exported, monkeypatch):
    asked = []

    def fake_download(repo_id, **kwargs):
        asked.append((repo_id, kwargs))
        return str(exported)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    version = open_version("hub:me/ictrain-demo@0a1b2c3d4e5f")
    tagged = {"repo_type": "dataset", "revision": "0a1b2c3d4e5f"}
    assert asked == [("me/ictrain-demo", {**tagged, "allow_patterns": ["manifest.json", "README.md"]})]
    assert version.identity()["folder"] == "hub:me/ictrain-demo@0a1b2c3d4e5f"
    assert len(load_split(version, "probe")) > 0
    assert asked[1] == ("me/ictrain-demo", {**tagged, "allow_patterns": ["data/probe/*"]})  # that split alone


def test_bad_hub_references_are_one_line(monkeypatch):
    def offline(repo_id, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    for bad in ("hub:me/ictrain-demo", "hub:ictrain@v1", "hub:/x@v1"):
        with pytest.raises(UserError, match="expected hub:OWNER/REPO@VERSION"):
            open_version(bad)
    with pytest.raises(UserError, match="download failed .OSError.; check the repository"):
        open_version("hub:me/ictrain-demo@v1")


def test_evaluate_scores_predictions_against_an_export_folder(exported, tmp_path):
    import json

    from trainer import evaluate

    rows = load_split(open_version(exported), "eval").to_list()
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "prediction": r["target"]}) + "\n" for r in rows))
    output = tmp_path / "report.json"
    code = evaluate.cli(["--data", str(exported), "--predictions", str(predictions), "--output", str(output),
                         "--resamples", "5"])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["rows"] == len(rows) and report["metrics"]["exact_match"]["all"]["overall"]["mean"] == 1.0
