"""The IWL / ICL / copy probe scores on hand-made groups, and the probe command end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

try:
    import conftest_trainer as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_trainer as fixtures

from trainer.probe import aggregate_items, context_weights, item_scores, probe_scores


def same(hypotheses, references, sources):
    """A similarity that is 1 for equal strings, else 0, so every score is countable by hand."""
    return [float(h == r) for h, r in zip(hypotheses, references)]


def _example(target, cosine):
    return {"id": target, "source": "s", "target": target, "origin": "random", "bm25": 0.0,
            "cosine": cosine}


def _group(target_id, test_set="id"):
    """Gold 'Y'. one_similar: labels A (cos 0.2), Y (paraphrase, cos 0.6), B (cos 0.2).
    shuffled: same inputs, labels rotated to B, A, Y (the paraphrase now shows A)."""
    similar = [_example("A", 0.2), _example("Y", 0.6), _example("B", 0.2)]
    shuffled = [{**similar[0], "target": "B"}, {**similar[1], "target": "A"},
                {**similar[2], "target": "Y"}]
    base = {"target_id": target_id, "test_set": test_set, "source": "x", "target": "Y"}
    return [{**base, "probe": "zero", "examples": [], "paraphrase_position": -1},
            {**base, "probe": "random", "examples": [_example("C", 0.0)], "paraphrase_position": -1},
            {**base, "probe": "one_similar", "examples": similar, "paraphrase_position": 1},
            {**base, "probe": "shuffled", "examples": shuffled, "paraphrase_position": 1}]


def test_scores_of_one_group_by_hand():
    rows = _group("t1")
    # zero -> Y, random -> Y (IWL 1); one_similar -> Y (ICL = weight of Y = 0.6);
    # shuffled -> B, a label other than the paraphrase's shown A (copy 1; B is not gold: 1)
    scores = probe_scores(rows, ["Y", "Y", "Y", "B"], same)["id"]
    assert scores == {"iwl": 1.0, "icl": 0.6, "copy": 1.0, "copy_nongold": 1.0, "items": 1}


def test_copying_the_paraphrase_label_is_not_blind_copying():
    rows = _group("t1")
    # under the shuffled context the model outputs A, the label shown with the close input: that
    # is input-matched ICL, not copying; outputting gold Y counts as copy but not copy_nongold
    assert probe_scores(rows, ["Y", "Z", "A", "A"], same)["all"]["copy"] == 0.0
    scores = probe_scores(rows, ["Y", "Z", "A", "Y"], same)["all"]
    assert (scores["iwl"], scores["icl"], scores["copy"], scores["copy_nongold"]) == (0.0, 0.2, 1.0, 0.0)


def test_means_per_test_set_and_incomplete_groups_skipped():
    rows = _group("t1") + _group("t2", "ood") + _group("t3", "ood")[:3]  # t3 lacks `shuffled`
    outputs = ["Y", "Y", "Y", "B"] + ["Y", "Q", "A", "A"] + ["Y", "Y", "Y"]
    scores = probe_scores(rows, outputs, same)
    assert scores["ood"] == {"iwl": 0.0, "icl": 0.2, "copy": 0.0, "copy_nongold": 0.0, "items": 1}
    assert scores["all"]["items"] == 2 and scores["all"]["icl"] == pytest.approx(0.4)


def test_item_scores_are_kept_per_group_and_average_to_the_means():
    rows = _group("t1") + _group("t2", "ood")
    outputs = ["Y", "Y", "Y", "B"] + ["Y", "Q", "A", "A"]
    items = item_scores(rows, outputs, same)
    assert items == {"id/t1": {"iwl": 1.0, "icl": 0.6, "copy": 1.0, "copy_nongold": 1.0},
                     "ood/t2": {"iwl": 0.0, "icl": 0.2, "copy": 0.0, "copy_nongold": 0.0}}
    means = aggregate_items(items)
    assert means["all"]["items"] == 2 and means["all"]["icl"] == pytest.approx(0.4)
    assert means["id"] == {**items["id/t1"], "items": 1}


def test_context_weights():
    assert np.allclose(context_weights([0.2, 0.6, 0.2]), [0.2, 0.6, 0.2])
    assert np.allclose(context_weights([-0.5, 1.0, 1.0]), [0.0, 0.5, 0.5])
    assert np.allclose(context_weights([0.0, 0.0]), [0.5, 0.5])


def test_chrf_similarity_is_on_unit_scale():
    from trainer.metrics import chrf_similarity

    values = chrf_similarity(["abc def", "", "abc"], ["abc def", "", "xyz"], ["", "", ""])
    assert values[0] == 1.0 and values[1] == 0.0 and 0.0 <= values[2] < 0.2


def test_an_empty_output_is_no_answer_in_every_probe():
    """Two empty outputs are no perfect match: IWL, ICL and copy all score 0 (for any similarity,
    here one that would call "" equal to "")."""
    rows = _group("t1")
    scores = probe_scores(rows, ["", "", "", ""], same)["all"]
    assert (scores["iwl"], scores["icl"], scores["copy"], scores["copy_nongold"]) == (0, 0, 0, 0)
    # an answer against an empty output scores 0 too
    assert probe_scores(rows, ["", "Y", "Y", "B"], same)["all"]["iwl"] == 0.0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    yield from fixtures.tiny_workspace(tmp_path_factory, "probe")


def test_probe_command_and_curves(workspace, tmp_path):
    from trainer import compare, probe

    output = tmp_path / "base.json"
    assert probe.cli(["--data", workspace["data"], "--model", workspace["model"], "--output",
                      str(output), "--max-new-tokens", "6", "--threads", "1"]) == 0
    result = json.loads(output.read_text())
    assert result["regime"] == "base" and result["similarity"] == "chrf"
    point = result["history"][0]
    assert point["step"] == 0 and set(point["scores"]) == {"id", "ood", "all"}
    assert point["scores"]["all"]["items"] == 4
    assert len(point["items"]) == 4 and all(key.split("/")[0] in {"id", "ood"} for key in point["items"])
    assert point["scores"]["all"]["icl"] == pytest.approx(
        np.mean([item["icl"] for item in point["items"].values()]), abs=1e-5)
    later = {**result, "history": [{**point, "step": 10}]}
    second = tmp_path / "later.json"
    second.write_text(json.dumps({**later, "regime": "random"}))
    chart = tmp_path / "figure4.png"
    assert compare.cli(["--kind", "probe", "--output", str(chart), "--reports",
                        f"contrastive={output}", str(second)]) == 0
    assert chart.stat().st_size > 1000
    table = json.loads(chart.with_suffix(".json").read_text())
    assert list(table) == ["random", "contrastive"]
    assert set(table["random"][0]) == {"step", "scores"}  # the chart's table keeps the means only
