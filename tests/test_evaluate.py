"""Similarity bins, bootstrap intervals over items, the eval report and the comparison chart."""
from __future__ import annotations

import json

import pytest

try:
    import conftest_trainer as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_trainer as fixtures

from trainer.metrics import corpus_scores, exact_match, item_scores, sentence_chrf
from trainer.report import bootstrap_group_means, similarity_bin, similarity_report


def test_bins_follow_the_paper_boundaries():
    cases = {0.0: "low", 0.329: "low", 0.33: "medium", 0.5: "medium", 0.669: "medium",
             0.67: "high", 1.0: "high", 1.0000001: "high", -0.01: "low"}
    assert {value: similarity_bin(value) for value in cases} == cases


def _rows():
    """Four in-domain items. Random contexts (low similarity) score 1, 1, 1, 0; paraphrase
    contexts put i1 (score 1) in High (max_sim exactly 0.67) and i2 (score 0) in Medium (0.33)."""
    rows, scores = [], []
    for item, score in zip(["i1", "i2", "i3", "i4"], [1.0, 1.0, 1.0, 0.0]):
        rows.append({"target_id": item, "test_set": "id", "eval_context": "random", "max_sim": 0.1})
        scores.append(score)
    rows.append({"target_id": "i1", "test_set": "id", "eval_context": "paraphrase", "max_sim": 0.67})
    rows.append({"target_id": "i2", "test_set": "id", "eval_context": "paraphrase", "max_sim": 0.33})
    return rows, scores + [1.0, 0.0]


def test_bootstrap_intervals_match_the_hand_computed_distribution():
    rows, scores = _rows()
    report = similarity_report(rows, scores, resamples=1000, seed=0)["id"]
    low = report["by_bin"]["low"]
    # Low: 4 items, scores 1,1,1,0 -> mean 0.75. A resample's mean is K/4, K ~ Binomial(4, 3/4):
    # P(K=0) = 0.4% < 2.5% <= P(K<=1) = 5.1%, and P(K=4) = 31.6% > 2.5%: interval [0.25, 1].
    assert (low["mean"], low["low"], low["high"]) == (0.75, 0.25, 1.0)
    assert (low["rows"], low["items"]) == (4, 4)
    # one item each: no spread at all
    assert report["by_bin"]["medium"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "rows": 1, "items": 1}
    assert report["by_bin"]["high"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "rows": 1, "items": 1}
    # paraphrase context: items i1 (1) and i2 (0); draws holding only one of them are common
    # (P(mean = 0) = (3/4)^4 - (1/2)^4 = 25%), so the interval spans [0, 1]
    para = report["by_context"]["paraphrase"]
    assert (para["mean"], para["low"], para["high"]) == (0.5, 0.0, 1.0)
    assert list(report["by_bin"]) == ["low", "medium", "high"]
    assert report["by_context_bin"]["paraphrase"]["high"]["mean"] == 1.0


def test_bootstrap_resamples_items_not_rows():
    """Two rows of one item move together: with one item holding both rows the interval is a
    point, whereas treating rows as independent would give a spread."""
    stats = bootstrap_group_means(["a", "a"], ["g", "g"], [0.0, 1.0], resamples=200, seed=1)["g"]
    assert (stats["mean"], stats["low"], stats["high"], stats["items"]) == (0.5, 0.5, 0.5, 1)


def test_bootstrap_is_seeded():
    items = [f"i{n}" for n in range(30)]
    values = [float(n % 3 == 0) for n in range(30)]
    first = bootstrap_group_means(items, ["g"] * 30, values, resamples=300, seed=7)
    assert first == bootstrap_group_means(items, ["g"] * 30, values, resamples=300, seed=7)


def test_metrics_units():
    assert exact_match(["a  b", "a b"], ["a b", "a c"]) == [1.0, 0.0]
    assert sentence_chrf(["same"], ["same"]) == [100.0]
    scores = item_scores("exact_match", ["x y"], ["x y"], ["s"])
    assert list(scores) == ["exact_match", "chrf"]
    assert list(item_scores("chrf", ["x"], ["y"], ["s"])) == ["chrf"]
    assert corpus_scores(["a b c d"], ["a b c d"])["bleu"] == pytest.approx(100.0)


def test_an_empty_output_scores_zero_in_every_metric():
    from trainer.metrics import Comet

    assert exact_match(["", " ", "a"], ["", "a", "a"]) == [0.0, 0.0, 1.0]
    assert sentence_chrf(["", "", "abc"], ["", "abc", "abc"]) == [0.0, 0.0, 100.0]
    assert item_scores("chrf", [""], [""], ["s"]) == {"chrf": [0.0]}
    assert corpus_scores(["", ""], ["a b", "c d"]) == {"chrf": 0.0, "bleu": 0.0}
    comet = Comet.__new__(Comet)  # the scoring rule only: the model is never asked about ""
    comet._predict = lambda hyps, refs, srcs: [0.9] * len(hyps)
    assert comet(["", "x", "y"], ["r", "r", ""], ["s", "s", "s"]) == [0.0, 0.9, 0.0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    yield from fixtures.tiny_workspace(tmp_path_factory, "evaluate")


def test_evaluate_base_model_reports_every_context_and_test_set(workspace, capsys):
    from trainer import evaluate

    output = workspace["root"] / "eval" / "base.json"
    code = evaluate.cli(["--data", workspace["data"], "--model", workspace["model"],
                         "--output", str(output), "--max-new-tokens", "6", "--limit", "2",
                         "--resamples", "100", "--threads", "1", "--gen-batch-size", "4"])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["label"] == "base" and report["primary_metric"] == "exact_match"
    assert report["dataset"]["version"] == "v0000tiny"
    assert set(report["metrics"]["exact_match"]) == {"id", "ood", "all"}
    contexts = {"random", "topk", "one_near", "paraphrase"}
    assert set(report["metrics"]["exact_match"]["id"]["by_context"]) == contexts
    assert set(report["corpus"]["ood"]) == contexts | {"all"}
    records = output.with_name("base.predictions.jsonl").read_text().splitlines()
    assert len(records) == report["rows"] == 2 * 4 * 2  # 2 items per test set, 4 contexts
    assert all("\n" not in json.loads(line)["prediction"] for line in records)
    assert output.with_suffix(".png").stat().st_size > 1000
    # stderr is no terminal here: progress comes as plain lines, after saying what is happening
    err = capsys.readouterr().err
    assert "loading model" in err and "generating answers to 16 eval rows" in err
    assert "generating: 4/16 (25%)" in err and "generating: 16/16 (100%)" in err


def test_compare_draws_several_models(workspace, tmp_path):
    from trainer import compare

    rows, scores = _rows()
    paths = []
    for label, shift in (("contrastive", 0.0), ("base", 0.1)):
        report = {"label": label, "primary_metric": "exact_match", "dataset": {"task": "t"},
                  "metrics": {"exact_match": similarity_report(
                      rows, [min(1.0, s + shift) for s in scores], resamples=50)}}
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(report))
        paths.append(str(path))
    output = tmp_path / "figure3.png"
    assert compare.cli(["--output", str(output), "--reports", *paths, "zero=" + paths[0]]) == 0
    table = json.loads(output.with_suffix(".json").read_text())
    assert list(table) == ["base", "zero", "contrastive"]  # the paper's order
    assert output.stat().st_size > 1000


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    from trainer import evaluate

    assert evaluate.cli(["--data", str(tmp_path), "--model", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err
