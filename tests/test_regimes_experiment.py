"""Aggregation and claim verdicts of experiments/regimes on hand-made reports (no model is run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.regimes.aggregate import by_bin, judge_worst, paired_difference, seed_of
from experiments.regimes.summary import write_results

ITEMS = 12
# exact match per model in the (low, high) bins: built so that every claim holds clearly
SCORES = {"base": (0.0, 1.0), "zero": (0.0, 0.0), "random": (1.0, 0.0),
          "similar": (0.0, 1.0), "contrastive": (1.0, 1.0)}


def _rows(low: float, high: float) -> list[dict]:
    rows = []
    for i in range(ITEMS):
        for context, max_sim, score in (("random", 0.1, low), ("near", 0.9, high)):
            rows.append({"id": f"eval-{context}-{i}", "target_id": f"t{i}", "test_set": "id",
                         "eval_context": context, "max_sim": max_sim, "target": "a",
                         "prediction": "a" if score else "b", "exact_match": score,
                         "chrf": 100.0 * score})
    return rows


def _write_model(work: Path, stem: str, low: float, high: float) -> None:
    (work / "eval").mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r) + "\n" for r in _rows(low, high))
    (work / "eval" / f"{stem}.predictions.jsonl").write_text(lines, encoding="utf-8")
    report = {"dataset": {"task": "align-synth", "version": "abc123", "folder": "/somewhere"},
              "primary_metric": "exact_match", "rows": 2 * ITEMS, "items": ITEMS,
              "generation": {"seconds": 1.0}}
    (work / "eval" / f"{stem}.json").write_text(json.dumps(report), encoding="utf-8")


def _write_training(work: Path, regime: str, seed: int, copy: float) -> None:
    folder = work / "train" / f"{regime}-s{seed}"
    folder.mkdir(parents=True)
    cfg = {"regime": regime, "seed": seed, "lora_r": 16, "lora_alpha": 16, "lora_dropout": 0.05,
           "lora_targets": "qkv", "learning_rate": 2e-4, "batch_size": 2, "grad_accum": 1,
           "max_length": 1024}
    record = {"config": cfg, "device": "cpu", "dtype": "float32",
              "train": {"steps": 4, "seconds": 2.0, "train_loss": 1.0}}
    (folder / "run_config.json").write_text(json.dumps(record), encoding="utf-8")
    scores = {"iwl": 0.5, "icl": 0.5, "copy": copy, "copy_nongold": copy, "items": 3}
    history = [{"step": step, "scores": {"all": scores}} for step in (0, 2, 4)]
    (folder / "probes.json").write_text(json.dumps({"history": history}), encoding="utf-8")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    _write_model(work, "base", *SCORES["base"])
    for regime in ("zero", "random", "similar", "contrastive"):
        for seed in (0, 1):
            _write_model(work, f"{regime}-s{seed}", *SCORES[regime])
            _write_training(work, regime, seed, 0.9 if regime == "similar" else 0.1 + 0.01 * seed)
    return work


def test_every_claim_is_supported_when_the_data_say_so(work: Path, tmp_path: Path) -> None:
    results = write_results(work, "demo", tmp_path / "results", tmp_path / "figures")
    verdicts = {name: claim["verdict"] for name, claim in results["claims"].items()}
    assert set(verdicts.values()) == {"supported"}, verdicts
    assert {c["verdict"] for c in results["chrf"]["claims"].values()} == {"supported"}
    assert results["chrf"]["by_bin"]["random"]["low"]["mean"] == 1.0
    assert results["by_bin"]["contrastive"]["high"]["mean"] == 1.0
    assert results["seeds"]["random"] == [0, 1] and results["seeds"]["base"] == []
    assert "folder" not in results["dataset"]
    assert (tmp_path / "figures" / "demo_figure3.png").stat().st_size > 0
    assert (tmp_path / "figures" / "demo_figure4.png").stat().st_size > 0
    assert "supported" in (tmp_path / "results" / "demo.md").read_text(encoding="utf-8")


def test_seeds_are_averaged_per_row_and_ties_are_inconclusive() -> None:
    one = {r["id"]: {"item": r["target_id"], "bin": "high" if r["max_sim"] > 0.5 else "low",
                     "score": r["exact_match"]} for r in _rows(0.0, 1.0)}
    other = {k: {**v, "score": 1.0 - v["score"]} for k, v in one.items()}
    both = {0: one, 1: other}
    assert {b["mean"] for b in by_bin(both).values()} == {0.5}
    diff = paired_difference({0: one}, {0: other})
    assert diff["high"]["mean"] == 1.0 and diff["low"]["mean"] == -1.0
    pooled = {"a": both, "b": both}
    assert judge_worst(pooled, "a", ("a", "b"), "high")["verdict"] == "inconclusive"
    assert judge_worst({"a": {0: one}, "b": {0: other}}, "a", ("b",), "high")["verdict"] == "contradicted"


def test_intervals_include_seed_variance() -> None:
    """Two seeds that disagree on every row: the item bootstrap alone would give a zero-width
    interval around 0.5 (every item scores 0.5 after averaging); resampling seeds widens it."""
    one = {r["id"]: {"item": r["target_id"], "bin": "high" if r["max_sim"] > 0.5 else "low",
                     "score": r["exact_match"]} for r in _rows(0.0, 1.0)}
    other = {k: {**v, "score": 1.0 - v["score"]} for k, v in one.items()}
    high = by_bin({0: one, 1: other})["high"]
    assert high["mean"] == 0.5 and high["low"] == 0.0 and high["high"] == 1.0
    assert high["seeds"] == [2]
    same = by_bin({0: one, 1: one})["high"]
    assert same["low"] == same["high"] == 1.0


def test_d3_mixture_is_judged_against_contrastive(work: Path, tmp_path: Path) -> None:
    for seed in (0, 1):  # as good as contrastive in Low, clearly worse in High
        _write_model(work, f"mixture-s{seed}", 1.0, 0.0)
    results = write_results(work, "demo", tmp_path / "results", tmp_path / "figures")
    claim = results["claims"]["d3_mixture_ties_low_medium_loses_high"]
    assert claim["verdict"] == "supported"
    assert results["by_bin"]["mixture"]["high"]["mean"] == 0.0
    assert results["claims"]["d_contrastive_best_or_tied"]["verdict"] == "supported"  # base..contrastive only


def test_seed_is_read_from_the_report_name() -> None:
    assert seed_of("contrastive-s2") == 2
    assert seed_of("base") is None
    assert seed_of("one-similar") is None


def test_ablation_compares_each_build_to_the_first_on_paired_rows(tmp_path: Path) -> None:
    from experiments.regimes import TASK
    from experiments.regimes.ablation import ablation, markdown

    for name, (low, high) in {"default": (1.0, 1.0), "eps0": (0.0, 1.0)}.items():
        work = tmp_path / name
        _write_model(work, "contrastive-s0", low, high)
        latest = work / TASK / "latest"
        latest.mkdir(parents=True)
        weights = {"random": 0.2, "similar": 0.2, "near": 0.5, "paraphrase": 0.1 if low else 0.0}
        (latest / "manifest.json").write_text(json.dumps({"config": {"weights": weights}}))
    table = ablation(tmp_path, ["default", "eps0"])
    assert table["default"]["minus_default"] is None
    assert table["eps0"]["minus_default"]["low"]["mean"] == -1.0
    assert table["eps0"]["minus_default"]["high"]["mean"] == 0.0
    assert "0.2/0.2/0.5/0" in markdown(table, "default")
    on_chrf = ablation(tmp_path, ["default", "eps0"], metric="chrf")  # chrF/100: same 0-1 scale
    assert on_chrf["eps0"]["minus_default"]["low"]["mean"] == -1.0


def test_paper_scale_plan_parses_and_covers_every_regime_and_variant(capsys) -> None:
    from experiments.regimes.paper_scale import VARIANTS, Scale, expected_hours, main, plan
    from experiments.regimes.run import parse_args

    steps = plan(Scale(), "/models/one-b", jobs=4)
    parsed = [parse_args(argv) for _, argv in steps]
    assert "mixture" in parsed[0].models and parsed[0].pool_size == 50_000 and parsed[0].steps == -1
    assert {p.name for p in parsed[1:]} == {f"paper-{name}" for name in VARIANTS}
    assert all(p.models == ["contrastive"] for p in parsed[1:])
    assert 0.1 < expected_hours(Scale(), 4) < 24
    assert main(["--model", "/models/one-b", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--train-limit=200 --epochs=5" in out and "--w-similar 0.5" in out
    assert "--no-progress --p=0.5 --eps=0" in out  # p = 0.5 leaves no room for eps


def test_final_probes_start_from_the_base_probe(tmp_path: Path, capsys) -> None:
    from experiments.regimes.probe_stats import load_histories, probe_summary
    from experiments.regimes.run import parse_args, regime_chain

    (tmp_path / "probe").mkdir()
    point = lambda step, v: {"history": [{"step": step, "scores": {"all": {  # noqa: E731
        "iwl": v, "icl": v, "copy": v, "copy_nongold": v, "items": 50}}}]}
    (tmp_path / "probe" / "base.json").write_text(json.dumps(point(0, 0.1)))
    for seed, value in ((0, 0.5), (1, 0.7)):
        (tmp_path / "probe" / f"similar-s{seed}.json").write_text(json.dumps(point(200, value)))
    summary = probe_summary(load_histories(tmp_path))
    assert summary["similar"]["seeds"] == 2 and list(summary["similar"]["curve"]) == [0, 200]
    assert summary["similar"]["curve"][0]["iwl"]["mean"] == 0.1
    assert summary["similar"]["final"]["icl"] == {"mean": 0.6, "min": 0.5, "max": 0.7}
    assert probe_summary(load_histories(tmp_path, seeds={1}))["similar"]["final"]["icl"]["mean"] == 0.7
    args = parse_args(["--work", str(tmp_path), "--name", "n", "--final-probes", "--dry-run",
                       "--probe-limit", "50"])
    regime_chain(args, tmp_path / "data", "zero", 0)  # dry run: prints the probe command
    probe_line = [line for line in capsys.readouterr().out.splitlines() if "trainer/probe.py" in line]
    assert len(probe_line) == 1 and "--limit 50" in probe_line[0]
    assert probe_line[0].endswith("--threads 1") and "n/probe/zero-s0.json" in probe_line[0]


def _probe_file(path: Path, step: int, per_item: dict[str, float]) -> None:
    """A final-probe file whose every probe scores `per_item[key]` on item `key`."""
    items = {key: {name: value for name in ("iwl", "icl", "copy", "copy_nongold")}
             for key, value in per_item.items()}
    mean = sum(per_item.values()) / len(per_item)
    scores = {"all": {**{name: mean for name in ("iwl", "icl", "copy", "copy_nongold")}, "items": len(items)}}
    path.write_text(json.dumps({"history": [{"step": step, "scores": scores, "items": items}]}))


def test_probe_intervals_resample_seeds_and_items(tmp_path: Path) -> None:
    """With per-item scores a probe point gets a seed-and-item interval, the change from the base
    is paired by item, and the copy claim compares regimes item by item."""
    from experiments.regimes.probe_stats import judge_copy, load_histories, probe_summary

    (tmp_path / "probe").mkdir()
    keys = [f"id/t{i}" for i in range(20)]
    _probe_file(tmp_path / "probe" / "base.json", 0, {k: 0.1 for k in keys})
    level = {"zero": 0.2, "random": 0.2, "similar": 0.8, "contrastive": 0.5}
    for regime, value in level.items():
        for seed in (0, 1):  # items alternate around the level, seeds shift it a little
            per_item = {k: value + (0.05 if i % 2 else -0.05) + 0.01 * seed for i, k in enumerate(keys)}
            _probe_file(tmp_path / "probe" / f"{regime}-s{seed}.json", 200, per_item)
    histories = load_histories(tmp_path)
    summary = probe_summary(histories)
    final = summary["similar"]["final"]["icl"]
    assert final["mean"] == pytest.approx(0.805) and final["low"] < 0.805 < final["high"]
    assert 0.7 < final["low"] and final["high"] < 0.9
    assert summary["similar"]["curve"][0]["icl"]["low"] == pytest.approx(0.1)  # the base: no spread
    change = summary["random"]["change"]["iwl"]
    assert change["from"] == 0 and change["to"] == 200 and change["low"] > 0
    copy = judge_copy(summary, histories)
    assert copy["verdict"] == "supported" and copy["highest"] == "similar"
    assert [d["pair"] for d in copy["differences"]] == ["similar - zero", "similar - random", "similar - contrastive"]
    assert all(d["low"] > 0 for d in copy["differences"])
    _probe_file(tmp_path / "probe" / "contrastive-s0.json", 200, {k: 0.95 for k in keys})
    _probe_file(tmp_path / "probe" / "contrastive-s1.json", 200, {k: 0.95 for k in keys})
    histories = load_histories(tmp_path)
    assert judge_copy(probe_summary(histories), histories)["verdict"] == "contradicted"


def test_probe_runs_on_other_items_get_seed_ranges_and_trained_starts_stay_paired(tmp_path: Path) -> None:
    """A rerun on fewer probe items leaves no interval (and no crash); a change whose first point
    is already trained is paired by seed, so an exact +0.02 on every seed and item is [0.02, 0.02]."""
    from experiments.regimes.probe_stats import load_histories, probe_summary

    (tmp_path / "probe").mkdir()
    keys = [f"id/t{i}" for i in range(10)]
    _probe_file(tmp_path / "probe" / "similar-s0.json", 200, {k: 0.5 for k in keys})
    _probe_file(tmp_path / "probe" / "similar-s1.json", 200, {k: 0.9 for k in keys[:5]})
    final = probe_summary(load_histories(tmp_path))["similar"]["final"]["icl"]
    assert final == {"mean": 0.7, "min": 0.5, "max": 0.9}
    for seed, level in ((0, 0.2), (1, 0.6)):
        folder = tmp_path / "train" / f"random-s{seed}"
        folder.mkdir(parents=True)
        (folder / "run_config.json").write_text("{}")
        history = []
        for step, shift in ((10, 0.0), (20, 0.02)):
            _probe_file(folder / "point.json", step, {k: level + 0.01 * i + shift for i, k in enumerate(keys)})
            history += json.loads((folder / "point.json").read_text())["history"]
        (folder / "probes.json").write_text(json.dumps({"history": history}))
    change = probe_summary(load_histories(tmp_path))["random"]["change"]["icl"]
    assert (change["from"], change["to"]) == (10, 20)
    assert change["low"] == pytest.approx(0.02) and change["high"] == pytest.approx(0.02)
