"""The default `align-synth` generator (`version: 2`), after the paper's appendix C.4.

A vocabulary of symbols (25 by default, A..Y), each owning a fixed probabilistic automaton over
its own three letters. An input is a string of distinct symbols in random order; its output lists
one emission of `emission_len` letters per input symbol, in one fixed permuted order of the
vocabulary, so the input-output alignment is a fixed permutation and any reshuffle of the input
keeps its output: the `align-synth` paraphraser (a shuffle of the target's own symbols) is
label-preserving by construction. The automata are fixed for the whole task (no per-instance
automaton), and each emission is drawn with a RNG seeded by the symbol and its alphabetical
neighbours in the input's set (as in version 1), so labels are deterministic and inputs that share
a run of symbols share those emissions: graded similarity, with a close neighbour in context
genuinely helping.

The appendix draws random-context data from 25 symbols and similar-context data from 12. One
build has one pool for every regime, so that is realised as a mixture: `dense_share` of the pool
uses only the first `dense_symbols` symbols (its BM25 neighbours are near-copies, the setting
where similar-context training learns to copy), the rest and both test sets use the whole
vocabulary. With inputs of 5-8 of 25 symbols there are ~1.8M symbol sets, so a test input's
label (a function of its set) is rarely in a 4,000-row pool; ingest counts that share and the
dataset card prints it. The OOD test set uses symbol sets held out of the pool by a seeded hash.
"""
from __future__ import annotations

import hashlib

import numpy as np

from schemas.config import GeneratorSpec
from stages.ingest.synth import LETTERS, Automaton, run_seeded_emissions


class AlignSynthC4:
    def __init__(self, spec: GeneratorSpec):
        self.spec = spec  # GeneratorSpec checked the symbols, lengths and dense vocabulary
        rng = np.random.default_rng([spec.seed, 2])
        self.order = {s: i for i, s in enumerate(rng.permutation(list(spec.symbols)).tolist())}
        self.automata = {}
        for symbol in spec.symbols:
            alphabet = tuple(rng.choice(list(LETTERS), size=3, replace=False).tolist())
            self.automata[symbol] = Automaton(alphabet, rng.dirichlet(np.full(3, 0.6), size=3), stop=0.0)

    def label(self, symbols: list[str]) -> str:
        length = self.spec.emission_len
        emissions = run_seeded_emissions(self.spec.seed, symbols,
                                         lambda s, rng: self.automata[s].emit_exactly(rng, length))
        return " ".join(emissions[s] for s in sorted(symbols, key=self.order.__getitem__))

    def held_out(self, symbols: list[str], seed: int) -> bool:
        """Whether this symbol set belongs to the OOD test set (a seeded hash of the set)."""
        key = f"{self.spec.seed}|{seed}|{''.join(sorted(symbols))}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") / 2**64 < self.spec.ood_holdout

    def sample(self, vocabulary: list[str], n: int, rng: np.random.Generator, taken: set[str],
               seed: int, ood: bool) -> list[tuple[str, str]]:
        """`n` inputs never drawn before (tracked in `taken`): a size uniform in [min_len, max_len],
        then that many distinct symbols of `vocabulary` in random order, in or out of the OOD sets."""
        pairs: list[tuple[str, str]] = []
        for _ in range(50 * n):
            if len(pairs) == n:
                break
            size = int(rng.integers(self.spec.min_len, self.spec.max_len + 1))
            symbols = rng.choice(vocabulary, size=size, replace=False).tolist()
            source = " ".join(symbols)
            if self.held_out(symbols, seed) == ood and source not in taken:
                taken.add(source)
                pairs.append((source, self.label(symbols)))
        return pairs


def generate_c4(spec: GeneratorSpec, pool_size: int, test_size: int, ood_size: int,
                seed: int) -> dict[str, list[tuple[str, str]]]:
    """Raw (source, target) pairs for the three splits; the pool mixes the dense part (first
    `dense_symbols` symbols) and the whole-vocabulary part in a seeded order."""
    gen = AlignSynthC4(spec)
    vocabulary, dense = list(spec.symbols), list(spec.symbols[:spec.dense_symbols])
    rng = np.random.default_rng([spec.seed, seed, 3])
    taken: set[str] = set()
    n_dense = int(round(spec.dense_share * pool_size))
    pool = (gen.sample(dense, n_dense, rng, taken, seed, ood=False)
            + gen.sample(vocabulary, pool_size - n_dense, rng, taken, seed, ood=False))
    pool = [pool[i] for i in rng.permutation(len(pool))]
    return {"train": pool,
            "test": gen.sample(vocabulary, test_size, rng, taken, seed, ood=False),
            "test_ood": gen.sample(vocabulary, ood_size, rng, taken, seed, ood=True)}
