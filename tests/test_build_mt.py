"""An MT task from local files with the real MiniLM embedder and precomputed paraphrases."""
import json
from pathlib import Path

import datasets

from tests.conftest import build_local_mt, mt_corpus, run_pipeline, write_mt_inputs


def test_mt_build_from_local_files(tmp_path):
    para = tmp_path / "para.jsonl"
    para.write_text("".join(json.dumps({"source": s, "paraphrases": [s.replace("Today", "This day"),
                                                                     s.replace("near", "close to")]}) + "\n"
                            for s, _ in mt_corpus()), encoding="utf-8")
    version = str(build_local_mt(tmp_path, "--paraphraser", "file", "--paraphraser-option", f"path={para}"))
    ev = datasets.load_from_disk(f"{version}/eval")
    assert set(ev["eval_context"]) == {"random", "topk", "one_near", "paraphrase"}
    first = ev[0]
    assert first["prompt"].startswith("Consider the following 4 translations from English to Hindi.")
    assert first["prompt"].endswith("Target:")
    para_rows = [r for r in ev if r["eval_context"] == "paraphrase"]
    for row in para_rows:
        close = [e for e in row["examples"] if e["origin"] == "paraphrase"]
        assert len(close) == 1 and close[0]["target"] == row["target"] and close[0]["cosine"] > 0.8
    manifest = json.loads(open(f"{version}/manifest.json").read())
    assert manifest["inputs"]["train"]["sha256"]
    _published_files_describe_the_local_inputs(Path(version), tmp_path)
    assert manifest["stages"]["embed"]["rows_out"] > 0
    code, out2, _ = run_pipeline("versions", "--task", "en-hi", "--out", str(tmp_path / "out"))
    assert code == 0 and version.rsplit("/", 1)[-1] in out2


def _published_files_describe_the_local_inputs(version: Path, machine_folder: Path) -> None:
    """The card and manifest name the files actually used (not the task's Hub sources) and hold
    no path of the builder's machine: both are published."""
    card = (version / "README.md").read_text()
    manifest_text = (version / "manifest.json").read_text()
    for published in (card, manifest_text):
        assert str(machine_folder) not in published
    assert "Samanantar" not in card and "built from local files for train, test, test_ood" in card
    assert "| train | train.tsv | sha256 " in card and "| 70 |" in card
    manifest = json.loads(manifest_text)
    assert manifest["inputs"]["train"]["file"] == "train.tsv"
    assert manifest["config"]["paraphraser_options"]["path"] == "para.jsonl"
    from pipeline.store import published_options

    assert published_options({"path": "data/alice/p.jsonl", "base_url": "http://gpu-box.lab:8000/v1",
                              "model": "Qwen/Qwen2.5-7B-Instruct"}) == {
        "path": "p.jsonl", "base_url": "http://<server>", "model": "Qwen/Qwen2.5-7B-Instruct"}
    assert manifest["stages"]["ingest"]["counters"]["inputs"]["test"] == {"source": "test.tsv", "rows_read": 10}


def test_the_version_does_not_depend_on_where_the_input_files_are(tmp_path):
    versions = []
    for folder in ("a", "b"):
        base = tmp_path / folder
        base.mkdir()
        paths = write_mt_inputs(base)
        code, out, err = run_pipeline("build", "--task", "en-hi", "--train", str(paths["train"]),
                                      "--test", str(paths["test"]), "--test-ood", str(paths["ood"]),
                                      "--paraphraser", "none", "--out", str(tmp_path / "out"),
                                      "--probe-size", "5", "--no-progress")
        assert code == 0, err
        versions.append(out.strip().splitlines()[-1])
    assert versions[0] == versions[1]
