"""The copy probe's `shuffled` context: the same inputs with their labels moved to other inputs.

Labels are compared by value, not by position: two examples may carry the same label (near
duplicates in the pool), and moving a label onto an example with an equal label would leave the
context unchanged there. Three outcomes, counted in the assemble stage's stats:

- `deranged`: no example shows a label equal to its own (possible exactly when no label value
  sits on more than half of the examples);
- `partial`: one value sits on more than half of them, so only some can change; the paraphrase
  position always does, and as many others as possible (2 x the examples not carrying that value);
- `unchanged`: every example carries the same label, so nothing can move; the row is kept (every
  probed input keeps its four probe rows) and is identical to its `one_similar` row.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

DERANGED, PARTIAL, UNCHANGED = "deranged", "partial", "unchanged"
_TRIES = 64  # uniform rejection draws before the constructive fallback


def shuffled_labels(labels: list[str], position: int, rng: np.random.Generator) -> tuple[list[int], str]:
    """(order, outcome): example i shows `labels[order[i]]`; `position` is the paraphrase's slot."""
    n = len(labels)
    top_value, top_count = Counter(labels).most_common(1)[0] if labels else ("", 0)
    if top_count == n:
        return list(range(n)), UNCHANGED
    if 2 * top_count <= n:
        return _derangement(labels, top_count, rng), DERANGED
    return _most_moved(labels, top_value, position, rng), PARTIAL


def _moves_all(labels: list[str], order) -> bool:
    return all(labels[int(j)] != label for j, label in zip(order, labels))


def _derangement(labels: list[str], top_count: int, rng: np.random.Generator) -> list[int]:
    """A permutation moving every label onto an example with a different label: uniform over all of
    them when one turns up in a few random draws, else built by rotating the examples, sorted by
    label group (largest first, shuffled within), by the largest group's size."""
    n = len(labels)
    for _ in range(_TRIES):
        order = rng.permutation(n)
        if _moves_all(labels, order):
            return [int(j) for j in order]
    by_value: dict[str, list[int]] = {}
    for i in rng.permutation(n).tolist():
        by_value.setdefault(labels[i], []).append(i)
    ranked = sorted(by_value.values(), key=len, reverse=True)
    sequence = [i for group in ranked for i in group]
    order = [0] * n
    for s, i in enumerate(sequence):
        order[i] = sequence[(s + top_count) % n]
    return order


def _most_moved(labels: list[str], top_value: str, position: int, rng: np.random.Generator) -> list[int]:
    """One value holds more than half the examples: swap every other example's label with that of a
    randomly chosen example carrying the value, the paraphrase position among the chosen when it
    carries it, so that 2 x (n - count) examples change, `position` included."""
    n = len(labels)
    others = [i for i in rng.permutation(n).tolist() if labels[i] != top_value]
    holders = [i for i in rng.permutation(n).tolist() if labels[i] == top_value and i != position]
    if labels[position] == top_value:
        holders.insert(0, position)
    order = list(range(n))
    for i, j in zip(others, holders):
        order[i], order[j] = j, i
    return order
