"""`pipeline build` end to end on the embedded default: the output contract and the regimes' properties."""
import json
import math
from collections import Counter

import datasets
import numpy as np
import pytest

from pipeline.store import SPLIT_FOLDERS
from schemas.rows import EVAL_SCHEMA, PROBE_SCHEMA, TRAIN_SCHEMA
from stages.text import normalize_text
from tests.conftest import build_small


def _load(version, folder):
    return datasets.load_from_disk(str(version / folder))


def test_version_folder_contract(align_synth_version):
    v = align_synth_version
    assert v.parent.joinpath("latest").resolve() == v.resolve()
    manifest = json.loads((v / "manifest.json").read_text())
    assert {"task", "version", "config", "inputs", "package_version", "created", "stages"} <= set(manifest)
    assert manifest["version"] == v.name and manifest["task"] == "align-synth"
    for stage in ("ingest", "plan", "retrieve", "paraphrase", "embed", "assemble"):
        entry = manifest["stages"][stage]
        assert {"fingerprint", "rows_in", "rows_out", "dropped", "seconds", "cached"} <= set(entry)
    schemas = {"eval": EVAL_SCHEMA, "probe": PROBE_SCHEMA}
    for folder in SPLIT_FOLDERS.values():
        ds = _load(v, folder)
        assert ds.column_names == schemas.get(folder, TRAIN_SCHEMA).names
        assert len(ds) > 0
    card = (v / "README.md").read_text()
    assert "max_sim histogram" in card and "train-contrastive" in card


def test_no_context_leaks_its_target(align_synth_version):
    for folder in SPLIT_FOLDERS.values():
        for row in _load(align_synth_version, folder):
            key = normalize_text(row["source"])
            for ex in row["examples"]:
                if ex["origin"] != "paraphrase":
                    assert normalize_text(ex["source"]) != key, (folder, row["id"])


def test_contrastive_kind_frequencies_and_close_positions(align_synth_version):
    manifest = json.loads((align_synth_version / "manifest.json").read_text())
    weights = manifest["config"]["weights"]
    ds = _load(align_synth_version, "train-contrastive")
    n = len(ds)
    kinds = Counter(ds["context_kind"])
    fallback = manifest["stages"]["assemble"]["counters"]["paraphrase_fallback_to_near"]
    expected = {k: n * w for k, w in weights.items()}
    expected["near"] += fallback
    expected["paraphrase"] -= fallback
    for kind, mean in expected.items():
        sd = math.sqrt(n * weights[kind] * (1 - weights[kind]))
        assert abs(kinds[kind] - mean) <= 4 * sd + 1, (kind, kinds[kind], mean)
    positions = Counter()
    for row in ds:
        if row["context_kind"] in ("near", "paraphrase"):
            close = [i for i, ex in enumerate(row["examples"]) if ex["origin"] != "random"]
            assert len(close) == 1
            positions[close[0]] += 1
    total, k = sum(positions.values()), manifest["config"]["k"]
    chi2 = sum((positions[i] - total / k) ** 2 / (total / k) for i in range(k))
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001


def test_similar_contexts_are_closer_than_random_ones(align_synth_version):
    def mean_cos(folder):
        return np.mean([ex["cosine"] for row in _load(align_synth_version, folder) for ex in row["examples"]])

    assert mean_cos("train-similar") > mean_cos("train-random") + 0.2


def test_paraphrase_examples_carry_the_gold_label(align_synth_version):
    seen = 0
    for folder in ("train-contrastive", "eval"):
        for row in _load(align_synth_version, folder):
            for ex in row["examples"]:
                if ex["origin"] == "paraphrase":
                    seen += 1
                    assert ex["target"] == row["target"] and ex["source"] != row["source"]
    assert seen > 0


def test_eval_and_probe_sets(align_synth_version):
    ev = _load(align_synth_version, "eval")
    assert set(ev["eval_context"]) == {"random", "topk", "one_near", "paraphrase"}
    assert set(ev["test_set"]) == {"id", "ood"}
    probe = _load(align_synth_version, "probe").to_list()
    by_target = {}
    for row in probe:
        by_target.setdefault(row["target_id"], {})[row["probe"]] = row
    for group in by_target.values():
        assert set(group) == {"zero", "random", "one_similar", "shuffled"}
        sim, shuf = group["one_similar"], group["shuffled"]
        pos = sim["paraphrase_position"]
        assert sim["examples"][pos]["target"] == sim["target"]
        assert [e["source"] for e in sim["examples"]] == [e["source"] for e in shuf["examples"]]
        if len({e["target"] for e in sim["examples"]}) == len(sim["examples"]):  # distinct labels
            assert all(a["target"] != b["target"] for a, b in zip(sim["examples"], shuf["examples"]))
        assert group["zero"]["examples"] == [] and group["zero"]["paraphrase_position"] == -1
    assert all(r["prompt"].endswith("Output:") and r["completion"] == " " + r["target"] for r in probe)


def test_same_inputs_give_byte_identical_datasets_and_version(align_synth_version, tmp_path):
    again = build_small(tmp_path)
    assert again.name == align_synth_version.name
    for folder in SPLIT_FOLDERS.values():
        for name in ("data-00000-of-00001.arrow", "dataset_info.json", "state.json"):
            assert (again / folder / name).read_bytes() == (align_synth_version / folder / name).read_bytes()


def test_cached_rebuild_and_partial_rerun(tmp_path):
    first = build_small(tmp_path)
    rebuilt = build_small(tmp_path)
    stages = json.loads((rebuilt / "manifest.json").read_text())["stages"]
    assert rebuilt == first and all(s["cached"] for s in stages.values())
    changed = build_small(tmp_path, "--tau", "0.95")
    stages = json.loads((changed / "manifest.json").read_text())["stages"]
    assert changed != first
    assert [n for n, s in stages.items() if not s["cached"]] == ["assemble"]
    assert stages["assemble"]["dropped"].get("similar: mean cosine below tau", 0) > 0
    changed = build_small(tmp_path, "--p", "0.3", "--eps", "0.2")
    stages = json.loads((changed / "manifest.json").read_text())["stages"]
    assert [n for n, s in stages.items() if not s["cached"]] == ["plan", "paraphrase", "embed", "assemble"]


@pytest.mark.parametrize("weights", [("--p", "0.5", "--eps", "0.1"), ("--w-near", "0.9")])
def test_weights_that_do_not_sum_to_one_are_refused(tmp_path, weights):
    from tests.conftest import run_pipeline

    code, _, err = run_pipeline("build", "--out", str(tmp_path), *weights)
    assert code == 2 and "sum to 1" in err and "Traceback" not in err
