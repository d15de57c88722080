"""The copy probe's `shuffled` context moves labels by value: no example keeps a label equal to its
own, and at least the paraphrase position never shows the gold label."""
import json
from collections import Counter

import datasets
import numpy as np
import pytest

from stages.assemble import shuffle
from stages.assemble.shuffle import DERANGED, PARTIAL, UNCHANGED, shuffled_labels
from tests.conftest import run_pipeline

PATTERNS = [  # (labels, paraphrase position, outcome)
    (["a", "b", "c", "d"], 2, DERANGED),
    (["g", "a", "g", "b"], 0, DERANGED),  # the gold label twice: the reported case
    (["a", "a", "b", "b"], 3, DERANGED),
    (["g", "x", "x", "g", "y", "y"], 3, DERANGED),
    (["a"] * 4 + ["b", "c", "d", "e"], 0, DERANGED),  # exactly half: feasible, but few draws succeed
    (["g", "g", "g", "x"], 1, PARTIAL),
    (["x", "g", "g", "g"], 0, PARTIAL),  # the position holds the minority label
    (["g", "x", "x", "x", "x"], 0, PARTIAL),
    (["g"] * 5 + ["x", "y"], 6, PARTIAL),
    (["g", "g", "g", "g"], 2, UNCHANGED),
    (["g"], 0, UNCHANGED),
]


def _check(labels, position, outcome, order, got):
    n = len(labels)
    assert sorted(order) == list(range(n)) and got == outcome
    shown = [labels[j] for j in order]
    moved = sum(a != b for a, b in zip(shown, labels))
    if outcome == DERANGED:
        assert moved == n
    elif outcome == PARTIAL:
        top = Counter(labels).most_common(1)[0][1]
        assert shown[position] != labels[position] and moved == 2 * (n - top)
    else:
        assert order == list(range(n))


@pytest.mark.parametrize("labels, position, outcome", PATTERNS)
def test_labels_move_by_value(labels, position, outcome):
    for seed in range(40):
        order, got = shuffled_labels(labels, position, np.random.default_rng(seed))
        _check(labels, position, outcome, order, got)


@pytest.mark.parametrize("labels, position, outcome", PATTERNS)
def test_the_constructive_fallback_also_moves_every_label(monkeypatch, labels, position, outcome):
    monkeypatch.setattr(shuffle, "_TRIES", 0)
    for seed in range(40):
        order, got = shuffled_labels(labels, position, np.random.default_rng(seed))
        _check(labels, position, outcome, order, got)


def test_seeded_and_varied():
    labels = ["g", "a", "g", "b", "c"]
    orders = {tuple(shuffled_labels(labels, 0, np.random.default_rng(seed))[0]) for seed in range(30)}
    assert len(orders) > 3
    assert shuffled_labels(labels, 0, np.random.default_rng(7)) == shuffled_labels(labels, 0, np.random.default_rng(7))


def test_seed_11_build_never_shows_the_gold_label_at_the_paraphrase(tmp_path):
    """The reported build: `--seed 11` on the default pool had 3 of 200 shuffled rows keeping the gold."""
    code, out, err = run_pipeline("build", "--task", "align-synth", "--seed", "11", "--out", str(tmp_path), "--no-progress")
    assert code == 0, err
    version = tmp_path / "align-synth" / "latest"
    probe = datasets.load_from_disk(str(version / "probe")).to_list()
    shuffled = [row for row in probe if row["probe"] == "shuffled"]
    assert len(shuffled) == 200
    for row in shuffled:
        assert row["examples"][row["paraphrase_position"]]["target"] != row["target"], row["id"]
    counts = json.loads((version / "manifest.json").read_text())["stages"]["assemble"]["counters"]["probe_shuffled"]
    assert set(counts) == {DERANGED, PARTIAL, UNCHANGED} and sum(counts.values()) == 200
