"""Markdown tables and trajectory figures from the per-seed results of a sweep."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data import TEST_REGIMES

LABELS = {"random": "random", "similar": "similar", "one_near": "one-near",
          "random_similar": "random+similar", "contrastive": "contrastive (random+one-near)"}
COLORS = {"random": "tab:blue", "similar": "tab:orange", "one_near": "tab:green",
          "random_similar": "tab:purple", "contrastive": "tab:red"}


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _regimes(runs: list[dict]) -> list[str]:
    return list(runs[0]["regimes"])


def mse_table(runs: list[dict]) -> str:
    """Train regime x test regime test MSE (mean ± sample std over seeds); lowest mean in bold."""
    regimes = _regimes(runs)
    means = {t: {r: np.mean([run["regimes"][r]["test"][t]["mse"] for run in runs]) for r in regimes}
             for t in TEST_REGIMES}
    rows = []
    for r in regimes:
        row = [LABELS[r]]
        for t in TEST_REGIMES:
            cell = _mean_std([run["regimes"][r]["test"][t]["mse"] for run in runs])
            row.append(f"**{cell}**" if means[t][r] == min(means[t].values()) else cell)
        rows.append(row)
    for name in runs[0].get("references", {}):
        rows.append([f"_reference: {name}_"] + [
            _mean_std([run["references"][name][t] for run in runs]) for t in TEST_REGIMES])
    return _table(["trained on \\ tested on"] + [LABELS[t] for t in TEST_REGIMES], rows)


def paired_gap_table(runs: list[dict], reference: str = "contrastive") -> str:
    """Test MSE of `reference` minus each other regime's, paired by seed (same target and test
    sets), so that the spread is that of the gap, not of task difficulty. Negative: `reference`
    is better."""
    rows = []
    for r in _regimes(runs):
        if r == reference:
            continue
        gaps = {t: [run["regimes"][reference]["test"][t]["mse"] - run["regimes"][r]["test"][t]["mse"]
                    for run in runs] for t in TEST_REGIMES}
        rows.append([LABELS[r]] + [_mean_std(gaps[t]).replace("-0.000", "0.000") for t in TEST_REGIMES])
    return _table([f"{LABELS[reference]} minus \\ tested on"] + [LABELS[t] for t in TEST_REGIMES], rows)


def gate_table(runs: list[dict]) -> str:
    """Final w, b, c and the cosine -b/w at which a context example's logit reaches f_hat's (0)."""
    rows = []
    for r in _regimes(runs):
        final = {p: [run["regimes"][r]["trajectory"][p][-1] for run in runs] for p in "wbc"}
        crossing = [-b / w if w > 0 else float("nan") for w, b in zip(final["w"], final["b"])]
        rows.append([LABELS[r], *(_mean_std(final[p]) for p in "wbc"), _mean_std(crossing)])
    return _table(["trained on", "w", "b", "c", "crossing cosine -b/w"], rows)


def weight_table(runs: list[dict]) -> str:
    """Where the gate puts its weight at test time: all context / most similar example /
    end-of-context slot / f_hat."""
    rows = []
    for r in _regimes(runs):
        row = [LABELS[r]]
        for t in TEST_REGIMES:
            stats = [run["regimes"][r]["test"][t] for run in runs]
            parts = [np.mean([s[key] for s in stats])
                     for key in ("context_weight", "top_context", "eoc_weight", "self_weight")]
            row.append(" / ".join(f"{p:.2f}" for p in parts))
        rows.append(row)
    return _table(["trained on \\ tested on"] + [LABELS[t] for t in TEST_REGIMES], rows)


def fhat_table(runs: list[dict]) -> str:
    """In-weights error of the jointly trained MLP f_hat at the end of training, per regime."""
    rows = [[LABELS[r], _mean_std([run["regimes"][r]["trajectory"]["fhat_mse"][-1] for run in runs])]
            for r in _regimes(runs)]
    rows.append(["_untrained MLP_", _mean_std([run["untrained_fhat_mse"] for run in runs])])
    rows.append(["_predict 0 (Var f)_", _mean_std([run["predict_zero_mse"] for run in runs])])
    return _table(["trained on", "MSE of f_hat alone vs f"], rows)


def plot_trajectories(runs: list[dict], path: Path, title: str) -> None:
    """w, b, c (and f_hat's MSE when it is learned) over training; line = seed mean, band = range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["w", "b", "c"]
    first = runs[0]["regimes"][_regimes(runs)[0]]["trajectory"]["fhat_mse"]
    if max(first) - min(first) > 1e-12:
        keys.append("fhat_mse")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    for ax, key in zip(axes, keys):
        for r in _regimes(runs):
            steps = runs[0]["regimes"][r]["trajectory"]["step"]
            values = np.array([run["regimes"][r]["trajectory"][key] for run in runs])
            ax.plot(steps, values.mean(axis=0), color=COLORS[r], label=LABELS[r])
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=COLORS[r], alpha=0.2)
        ax.set_title("MSE of f_hat alone" if key == "fhat_mse" else key)
        ax.set_xlabel("training step")
        if key == "fhat_mse":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
