"""Training end to end on a tiny random-init Llama, plus the length guard and the CLI config."""
from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

try:
    import conftest_trainer as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_trainer as fixtures

from schemas.errors import UserError
from trainer.config import TrainConfig, parse_cli
from trainer.data import fit_to_length, load_split, open_version, training_rows


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a busy 2-core machine this is ~30x faster than two contending ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("trainer")
    link = fixtures.write_version(root / "data")
    model = fixtures.write_tiny_model(root / "model", fixtures.corpus_texts(link.resolve()))
    return {"root": root, "data": str(link), "model": str(model)}


@pytest.fixture(scope="module")
def trained(workspace):
    from trainer import sft

    cfg = TrainConfig(data=workspace["data"], model=workspace["model"], regime="contrastive",
                      output_dir=str(workspace["root"] / "adapter"), max_steps=10,
                      learning_rate=1e-2, lora_targets="all", batch_size=4, logging_steps=1,
                      probe_every=5, limit=1, max_new_tokens=6, gen_batch_size=8, threads=1)
    with warnings.catch_warnings(record=True) as caught, redirect_stderr(io.StringIO()) as err, \
            redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("always")
        trainer, record = sft.train(cfg)
    return {"cfg": cfg, "trainer": trainer, "record": record, "adapter": workspace["root"] / "adapter",
            "warnings": [str(w.message) for w in caught], "stderr": err.getvalue(), "stdout": out.getvalue()}


def test_loss_goes_down(trained):
    losses = [h["loss"] for h in trained["record"]["log_history"] if "loss" in h]
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05


def test_adapter_weights_changed_and_saved(trained):
    from safetensors.numpy import load_file

    weights = load_file(str(trained["adapter"] / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b, "no LoRA B matrices saved"
    # PEFT starts every B at zero, so any non-zero entry was learnt
    assert all(np.abs(v).max() > 0 for v in lora_b)
    targets = {k.split(".")[-3] for k in weights}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= targets


def test_training_emits_no_checkpointing_deprecation_warning(trained):
    """PEFT reads the deprecated `is_gradient_checkpointing` when it wraps the model; the warning
    it raised on every run is silenced exactly, at our call site (trainer.modeling)."""
    assert not [w for w in trained["warnings"] if "is_gradient_checkpointing" in w]


def test_training_says_what_it_does_and_prints_progress_lines(trained):
    """stderr is no terminal here, so progress comes as a plain line every 10% of the steps."""
    err = trained["stderr"]
    for said in ("data: align-tiny version v0000tiny, train-contrastive, 60 rows", "tokenising 60",
                 "loading model", "adding LoRA (r=16, all)", "training 60 rows"):
        assert said in err
    lines = [line for line in err.splitlines() if line.startswith("training: ")]
    assert [line.split()[1] for line in lines] == [f"{step}/10" for step in range(1, 11)]
    assert "left, loss " in lines[-1]
    assert "probes at step 5: 8/8 (100%)" in err
    assert "log at step 1: loss " in err  # the Trainer's log records, on stderr
    assert "{'loss'" not in trained["stdout"] and trained["stdout"].strip().splitlines()[-1].startswith("adapter and")


def test_run_config_records_config_and_dataset_version(trained):
    run = json.loads((trained["adapter"] / "run_config.json").read_text())
    assert run["config"]["regime"] == "contrastive"
    assert run["dataset"]["version"] == "v0000tiny"
    assert run["dataset"]["metric"] == "exact_match"
    assert run["lengths"]["dropped"] == 0 and run["lengths"]["rows"] == 60
    assert run["device"] == "cpu" and run["dtype"] == "float32"
    assert run["train"]["steps"] == 10


def test_probe_callback_writes_history(trained):
    probes = json.loads((trained["adapter"] / "probes.json").read_text())
    assert [p["step"] for p in probes["history"]] == [0, 5, 10]
    for point in probes["history"]:
        assert set(point["scores"]) == {"id", "ood", "all"}
        assert 0.0 <= point["scores"]["all"]["iwl"] <= 1.0
        assert len(point["items"]) == point["scores"]["all"]["items"]


def test_lora_defaults_target_qkv_only():
    from trainer.modeling import lora_config

    cfg = TrainConfig(data="d", model="m")
    lora = lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj"}
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (16, 16, 0.05)
    assert (cfg.learning_rate, cfg.batch_size) == (2e-4, 2)


def test_cli_yaml_then_flags(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("data: d\nmodel: m\nlora-r: 4\nregime: similar\nbatch_size: 8\n")
    cfg = parse_cli(TrainConfig, ["--config", str(path), "--lora-r", "8", "--batching", "grouped"])
    assert (cfg.lora_r, cfg.regime, cfg.batch_size, cfg.batching) == (8, "similar", 8, "grouped")


def test_bad_yaml_key_is_a_user_error(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("data: d\nmodel: m\nlearning_rat: 0.1\n")
    with pytest.raises(UserError, match="learning_rat"):
        parse_cli(TrainConfig, ["--config", str(path)])


def _lengths(workspace):
    from trainer.data import token_lengths
    from trainer.modeling import load_tokenizer

    tokenizer = load_tokenizer(workspace["model"])
    rows = training_rows(open_version(workspace["data"]), "random")
    total, _ = token_lengths(tokenizer, rows["prompt"], rows["completion"])
    return tokenizer, rows, total


def test_rows_too_long_are_dropped_and_counted(workspace):
    tokenizer, rows, total = _lengths(workspace)
    cut = int(np.sort(total)[-4])  # at least the longest row exceeds it
    expected = int((total > cut).sum())
    kept, report = fit_to_length(rows, tokenizer, max_length=cut, max_drop_share=0.5)
    assert 1 <= report.dropped == expected < len(rows)
    assert report.kept == len(kept) == len(rows) - expected
    assert report.total_tokens["max"] == int(total.max())
    # what remains fits exactly as TRL will count it (prompt + completion + EOS)
    eos = tokenizer.eos_token
    assert max(len(tokenizer(p + c + eos)["input_ids"]) for p, c in
               zip(kept["prompt"], kept["completion"])) <= cut


def test_refuses_when_too_many_rows_would_be_dropped(workspace):
    tokenizer, rows, total = _lengths(workspace)
    with pytest.raises(UserError, match="max_length"):
        fit_to_length(rows, tokenizer, max_length=int(np.median(total)), max_drop_share=0.1)


def test_padding_free_loss_equals_padded_loss(workspace, trained):
    """The throughput mode optimises the same per-token loss: same rows, same number, through
    TRL's own loss path (which runs without a KV cache, so transformers applies the
    block-diagonal mask it derives from the restarting position_ids)."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer, rows, _ = _lengths(workspace)
    trainer = trained["trainer"]
    examples = []
    for prompt, completion in zip(rows["prompt"][:4], rows["completion"][:4]):
        ids = tokenizer(prompt + completion + tokenizer.eos_token)["input_ids"]
        start = len(tokenizer(prompt)["input_ids"])
        examples.append({"input_ids": ids, "labels": [-100] * start + ids[start:]})
    losses = {}
    trainer.model.eval()  # no LoRA dropout, so both passes are deterministic
    for padding_free in (False, True):
        collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id,
                                                  padding_free=padding_free)
        batch = collate(examples)
        assert ("attention_mask" in batch) != padding_free
        with torch.no_grad():
            losses[padding_free] = trainer.compute_loss(trainer.model, batch).item()
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_end_to_end_on_a_real_align_synth_build(tmp_path, one_thread, monkeypatch):
    """build -> train -> evaluate -> probe through the command-line entry points. Training gets
    the model as a path relative to where it runs; evaluation and probes run from another folder
    and find that base model through the adapter's run_config.json."""
    from pipeline.cli import main as pipeline_main
    from trainer import evaluate, probe, sft

    assert pipeline_main(["build", "--task", "align-synth", "--out", str(tmp_path / "runs"),
                          "--pool-size", "300", "--test-size", "40", "--ood-size", "20",
                          "--probe-size", "20", "--no-progress"]) == 0
    data = tmp_path / "runs" / "align-synth" / "latest"
    model = fixtures.write_tiny_model(tmp_path / "model", fixtures.corpus_texts(data.resolve()))
    adapter = tmp_path / "adapter"
    monkeypatch.chdir(tmp_path)
    assert sft.cli(["--data", str(data), "--model", "model", "--regime", "similar",
                    "--output-dir", str(adapter), "--max-steps", "4", "--batch-size", "2",
                    "--logging-steps", "1", "--threads", "1"]) == 0
    run = json.loads((adapter / "run_config.json").read_text())
    manifest = json.loads((data / "manifest.json").read_text())
    assert run["dataset"]["version"] == manifest["version"] and run["train"]["steps"] == 4
    assert run["config"]["model"] == run["base_model"]["path"] == str(model.resolve())
    assert run["base_model"]["given"] == "model"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert run["lengths"]["rows"] == len(training_rows(open_version(data), "similar"))
    report_path = tmp_path / "eval.json"
    assert evaluate.cli(["--data", str(data), "--adapter", str(adapter), "--output", str(report_path),
                         "--limit", "2", "--max-new-tokens", "8", "--resamples", "50"]) == 0
    report = json.loads(report_path.read_text())
    assert report["label"] == "similar" and report["primary_metric"] == "exact_match"
    assert set(report["metrics"]["exact_match"]["all"]["by_context"]) == {
        "random", "topk", "one_near", "paraphrase"}
    probe_path = tmp_path / "probe.json"
    assert probe.cli(["--data", str(data), "--adapter", str(adapter), "--output", str(probe_path),
                      "--limit", "2", "--max-new-tokens", "8"]) == 0
    result = json.loads(probe_path.read_text())
    assert result["regime"] == "similar" and result["history"][0]["step"] == 4
    probe_sets = set(load_split(open_version(data), "probe")["test_set"])
    assert result["history"][0]["scores"]["all"]["items"] == 2 * len(probe_sets)


def test_bench_runs_at_tiny_shape(one_thread, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_trainer.py"
    spec = importlib.util.spec_from_file_location("bench_trainer", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "bench.json"
    results = bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--settings", "padded:2",
                          "padding_free:4", "--output", str(output)])
    assert [r["setting"] for r in results] == ["padded:2", "padding_free:4"]
    assert all(r["tokens_per_s"] > 0 and r["timed_tokens"] > 0 for r in results)
    assert json.loads(output.read_text())["shape"] == "tiny"


def test_only_the_main_process_builds_the_comet_scorer(workspace, monkeypatch, tmp_path):
    """Under a data-parallel launch the other ranks only wait at the probe barrier: no COMET copy."""
    from trainer import metrics, sft

    built = []
    monkeypatch.setattr(metrics, "Comet", lambda path: built.append(path) or metrics.chrf_similarity)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_text("not loaded")
    cfg = TrainConfig(data=workspace["data"], model=workspace["model"], comet_path=str(checkpoint),
                      probe_every=5, limit=1)
    version = open_version(cfg.data)
    sft.probe_callback(cfg, None, tmp_path, version, is_main=False)
    assert built == []
    sft.probe_callback(cfg, None, tmp_path, version, is_main=True)
    assert built == [str(checkpoint)]
