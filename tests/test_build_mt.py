"""An MT task from local files with the real MiniLM embedder and precomputed paraphrases."""
import json
from pathlib import Path

import datasets
import numpy as np

from tests.conftest import run_pipeline

TOPICS = ["the weather", "the train", "my sister", "this book", "the market", "our village", "the river",
          "a new school", "the old bridge", "the doctor"]
VERBS = ["likes", "sees", "visits", "remembers", "describes", "builds"]


def _corpus() -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(90):
        a, b = rng.choice(TOPICS, 2, replace=False)
        verb = VERBS[i % len(VERBS)]
        rows.append((f"Today {a} {verb} {b} near the station {i % 7}.", f"आज {a} {verb} {b} {i % 7} हिन्दी"))
    return rows


def test_mt_build_from_local_files(tmp_path):
    rows = _corpus()
    train, test, ood, para = (tmp_path / n for n in ("train.tsv", "test.tsv", "ood.tsv", "para.jsonl"))
    train.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows[:70]), encoding="utf-8")
    test.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows[70:80]), encoding="utf-8")
    ood.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows[80:]), encoding="utf-8")
    para.write_text("".join(json.dumps({"source": s, "paraphrases": [s.replace("Today", "This day"),
                                                                     s.replace("near", "close to")]}) + "\n"
                            for s, _ in rows), encoding="utf-8")
    code, out, err = run_pipeline(
        "build", "--task", "en-hi", "--train", str(train), "--test", str(test), "--test-ood", str(ood),
        "--paraphraser", "file", "--paraphraser-option", f"path={para}", "--out", str(tmp_path / "out"),
        "--probe-size", "5", "--no-progress")
    assert code == 0, err
    version = out.strip().splitlines()[-1]
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
    assert manifest["stages"]["ingest"]["counters"]["inputs"]["test"] == {"source": "test.tsv", "rows_read": 10}


def test_the_version_does_not_depend_on_where_the_input_files_are(tmp_path):
    rows = _corpus()
    versions = []
    for folder in ("a", "b"):
        base = tmp_path / folder
        base.mkdir()
        for name, part in (("train.tsv", rows[:70]), ("test.tsv", rows[70:80]), ("ood.tsv", rows[80:])):
            (base / name).write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in part), encoding="utf-8")
        code, out, err = run_pipeline("build", "--task", "en-hi", "--train", str(base / "train.tsv"),
                                      "--test", str(base / "test.tsv"), "--test-ood", str(base / "ood.tsv"),
                                      "--paraphraser", "none", "--out", str(tmp_path / "out"),
                                      "--probe-size", "5", "--no-progress")
        assert code == 0, err
        versions.append(out.strip().splitlines()[-1])
    assert versions[0] == versions[1]
