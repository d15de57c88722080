"""Item-level and corpus-level scores, and the output-similarity function the probes use.

Item scores keep their usual units: exact match 0/1, chrF 0-100, COMET 0-1. Probe similarities
are all on [0, 1] (chrF divided by 100) so the three probe curves share one axis.

An empty output (nothing but whitespace) is no answer, and no answer scores 0 against anything,
another empty output included: exact match 0, sentence chrF 0, COMET 0 (the model is not even
asked), probe similarity 0. Without this rule two empty outputs would be a "perfect match" (chrF
of "" against "" is 100), so a model that says nothing with and without context would get a
perfect IWL score. Every pairwise score goes through `score_answers`, which applies the rule.
Corpus chrF / BLEU need no rule: an empty output adds no n-grams, so it lowers the corpus score
like any wrong answer (all outputs empty: 0).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from schemas.errors import UserError

SimilarityFn = Callable[[list[str], list[str], list[str]], list[float]]
"""(hypotheses, references, sources) -> one similarity in [0, 1] per pair."""


def is_no_answer(text: str) -> bool:
    return not text.strip()


def score_answers(score: SimilarityFn, hypotheses: list[str], references: list[str],
                  sources: list[str] | None = None) -> list[float]:
    """`score` on the pairs where both sides hold an answer; 0.0 where either is empty."""
    sources = sources if sources is not None else [""] * len(hypotheses)
    answered = [i for i, (h, r) in enumerate(zip(hypotheses, references))
                if not (is_no_answer(h) or is_no_answer(r))]
    values = [0.0] * len(hypotheses)
    scored = score([hypotheses[i] for i in answered], [references[i] for i in answered],
                   [sources[i] for i in answered]) if answered else []
    for i, value in zip(answered, scored):
        values[i] = float(value)
    return values


def _squash(text: str) -> str:
    return " ".join(text.split())


def exact_match(predictions: list[str], targets: list[str]) -> list[float]:
    def equal(hyps, refs, _):
        return [float(_squash(p) == _squash(t)) for p, t in zip(hyps, refs)]

    return score_answers(equal, predictions, targets)


def sentence_chrf(predictions: list[str], targets: list[str]) -> list[float]:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()

    def chrf_scores(hyps, refs, _):
        return [100.0 if p == t else chrf.sentence_score(p, [t]).score for p, t in zip(hyps, refs)]

    return score_answers(chrf_scores, predictions, targets)


def corpus_scores(predictions: list[str], targets: list[str]) -> dict[str, float]:
    """Corpus chrF and BLEU (sacrebleu defaults), the numbers MT papers report."""
    import sacrebleu

    if not predictions:
        return {}
    return {"chrf": round(sacrebleu.corpus_chrf(predictions, [targets]).score, 4),
            "bleu": round(sacrebleu.corpus_bleu(predictions, [targets]).score, 4)}


def comet_checkpoint(checkpoint: str) -> Path:
    """The checkpoint path, checked to exist before anything is loaded."""
    path = Path(checkpoint)
    if not path.exists():
        raise UserError(f"--comet-path {checkpoint}: COMET checkpoint not found; pass the local "
                        "checkpoints/model.ckpt of a downloaded COMET-22 model")
    return path


class Comet:
    """COMET-22 from a local checkpoint; `unbabel-comet` is imported only when one is given."""

    def __init__(self, checkpoint: str, batch_size: int = 32):
        path = comet_checkpoint(checkpoint)
        try:
            from comet import load_from_checkpoint
        except ImportError:
            raise UserError("--comet-path needs the `unbabel-comet` package; pip install "
                            "unbabel-comet, or leave --comet-path out to use chrF") from None
        self.model = load_from_checkpoint(str(path))
        self.batch_size = batch_size

    def __call__(self, hypotheses: list[str], references: list[str], sources: list[str]) -> list[float]:
        return score_answers(self._predict, hypotheses, references, sources)

    def _predict(self, hypotheses: list[str], references: list[str], sources: list[str]) -> list[float]:
        import torch

        data = [{"src": s, "mt": h, "ref": r} for h, r, s in zip(hypotheses, references, sources)]
        gpus = 1 if torch.cuda.is_available() else 0
        result = self.model.predict(data, batch_size=self.batch_size, gpus=gpus, progress_bar=False)
        return [float(score) for score in result.scores]


def chrf_similarity(hypotheses: list[str], references: list[str], sources: list[str]) -> list[float]:
    return [score / 100.0 for score in sentence_chrf(hypotheses, references)]


def similarity_function(comet_path: str | None) -> SimilarityFn:
    """chrF by default; COMET-22 when a local checkpoint is given (docs/design.md section 3)."""
    return Comet(comet_path) if comet_path else chrf_similarity


def item_scores(metric: str, predictions: list[str], targets: list[str], sources: list[str],
                comet: Comet | None = None,
                execution: list[float] | None = None) -> dict[str, list[float]]:
    """Every item-level score that applies; the task's own metric (from the manifest) comes first.
    Execution accuracy needs the databases, so its scores come in ready (trainer.sql_metric)."""
    scores: dict[str, list[float]] = {}
    if metric == "exact_match":
        scores["exact_match"] = exact_match(predictions, targets)
    elif metric == "execution_accuracy":
        if execution is None:
            raise UserError("execution accuracy runs the SQL on its databases; pass --db-dir")
        scores["execution_accuracy"] = [float(value) for value in execution]
        scores["exact_match"] = exact_match(predictions, targets)
    elif metric != "chrf":
        raise UserError(f"manifest metric {metric!r} is not supported by the trainer; expected "
                        "exact_match, chrf or execution_accuracy")
    scores["chrf"] = sentence_chrf(predictions, targets)
    if comet is not None:
        scores["comet"] = comet(predictions, targets, sources)
    return scores
