"""The first `align-synth` generator (docs/design.md section 4), now task `align-synth-v1`; the
default task uses `synth_c4.py`, which shares the automata and the neighbour-seeded emissions.

Symbols A..H each own a small probabilistic automaton that emits a short letter string. An input is
a string of distinct symbols in random order ("C A F"); its output lists the emissions of the
input's symbols in one fixed order of the alphabet. Each symbol's emission is drawn from its
automaton with a RNG seeded by the symbol and its two neighbours in the alphabetically sorted
set (the `symbol-runs` similarity of `stages/embed/symbols.py` measures exactly these runs), so:
- any reshuffle of an input has exactly the same output (a label-preserving "paraphrase");
- inputs that share a run of symbols share those emissions (graded similarity, like MT);
- nothing about one input's output is learnable from the symbols alone except the automata's
  typical strings: seeing a close neighbour in context genuinely helps.
The OOD test set uses symbol sets that never occur in the training pool.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from schemas.config import GeneratorSpec

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Automaton:
    alphabet: tuple[str, ...]  # letters each state emits (state i emits alphabet[i])
    transitions: np.ndarray  # (states, states) row-stochastic
    stop: float  # probability of stopping after each emitted letter (after the first two)

    def emit(self, rng: np.random.Generator, max_len: int = 6) -> str:
        state = int(rng.integers(len(self.alphabet)))
        out = [self.alphabet[state]]
        while len(out) < max_len and (len(out) < 2 or rng.random() > self.stop):
            state = int(rng.choice(len(self.alphabet), p=self.transitions[state]))
            out.append(self.alphabet[state])
        return "".join(out)

    def emit_exactly(self, rng: np.random.Generator, length: int) -> str:
        """A walk of exactly `length` letters (the appendix-C.4 generator's fixed-length emission)."""
        state = int(rng.integers(len(self.alphabet)))
        out = [self.alphabet[state]]
        while len(out) < length:
            state = int(rng.choice(len(self.alphabet), p=self.transitions[state]))
            out.append(self.alphabet[state])
        return "".join(out)


def run_seeded_emissions(seed: int, symbols: list[str],
                         emit: Callable[[str, np.random.Generator], str]) -> dict[str, str]:
    """Each symbol's emission, drawn with a RNG seeded by the symbol and its two neighbours in the
    alphabetically sorted set: a reshuffle keeps every emission, a shared run shares them."""
    alphabetical = ["^", *sorted(symbols), "$"]
    emissions = {}
    for i, symbol in enumerate(alphabetical[1:-1], start=1):
        key = f"{seed}|{alphabetical[i - 1]}{symbol}{alphabetical[i + 1]}".encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        emissions[symbol] = emit(symbol, rng)
    return emissions


class AlignSynth:
    """The first generator (`version: 1`, task `align-synth-v1`): sets of 3-5 of 8 symbols."""

    def __init__(self, spec: GeneratorSpec):
        self.spec = spec  # GeneratorSpec checked the symbols and lengths
        rng = np.random.default_rng(spec.seed)
        self.order = {s: i for i, s in enumerate(rng.permutation(list(spec.symbols)).tolist())}
        letters = rng.permutation(list(LETTERS)).tolist()
        self.automata = {}
        for i, symbol in enumerate(spec.symbols):
            alphabet = tuple(letters[(3 * i + j) % len(LETTERS)] for j in range(3))
            transitions = rng.dirichlet(np.full(3, 0.6), size=3)
            self.automata[symbol] = Automaton(alphabet, transitions, stop=float(rng.uniform(0.3, 0.6)))

    def label(self, symbols: list[str]) -> str:
        emissions = run_seeded_emissions(self.spec.seed, symbols, lambda s, rng: self.automata[s].emit(rng))
        return " ".join(emissions[s] for s in sorted(symbols, key=self.order.__getitem__))

    def symbol_sets(self) -> list[frozenset[str]]:
        sets = []
        for size in range(self.spec.min_len, self.spec.max_len + 1):
            sets.extend(frozenset(c) for c in itertools.combinations(self.spec.symbols, size))
        return sets

    def split_sets(self, seed: int) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        """(in-domain sets, held-out OOD sets), a seeded split of every symbol set."""
        sets = self.symbol_sets()
        rng = np.random.default_rng([self.spec.seed, seed, 1])
        order = rng.permutation(len(sets))
        n_ood = max(1, int(round(self.spec.ood_holdout * len(sets))))
        return [sets[i] for i in order[n_ood:]], [sets[i] for i in order[:n_ood]]

    def sample(self, sets: list[frozenset[str]], n: int, rng: np.random.Generator,
               taken: set[str]) -> list[tuple[str, str]]:
        """`n` inputs never drawn before (tracked in `taken`), so sizes mean distinct rows; stops
        early only when the sets cannot give that many distinct orderings."""
        pairs: list[tuple[str, str]] = []
        for _ in range(50 * n):
            if len(pairs) == n:
                break
            chosen = sets[int(rng.integers(len(sets)))]
            symbols = rng.permutation(sorted(chosen)).tolist()
            source = " ".join(symbols)
            if source not in taken:
                taken.add(source)
                pairs.append((source, self.label(symbols)))
        return pairs


def generate(spec: GeneratorSpec, pool_size: int, test_size: int, ood_size: int,
             seed: int) -> dict[str, list[tuple[str, str]]]:
    """Raw (source, target) pairs for the three splits; cleaning and dedup happen in ingest,
    exactly as for files, so the synthetic task exercises the same code path."""
    if spec.version == 2:
        from stages.ingest.synth_c4 import generate_c4

        return generate_c4(spec, pool_size, test_size, ood_size, seed)
    gen = AlignSynth(spec)
    in_domain, held_out = gen.split_sets(seed)
    rng = np.random.default_rng([spec.seed, seed, 2])
    taken: set[str] = set()
    return {"train": gen.sample(in_domain, pool_size, rng, taken),
            "test": gen.sample(in_domain, test_size, rng, taken),
            "test_ood": gen.sample(held_out, ood_size, rng, taken)}
