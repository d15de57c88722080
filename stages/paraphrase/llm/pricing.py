"""Prices and token estimates for `--dry-run` and `--max-cost`.

Prices are list prices in USD per million tokens (standard tier, no batch or cache discount) as
published in May 2026 (Gemini: 2026-05-12/16, OpenAI: 2026-03 to 2026-05). They are estimates:
providers change them, and reasoning models bill hidden reasoning tokens as output. Give
`price_in` / `price_out` (USD per 1M tokens) as paraphraser options to override, or to set a price
for a model not listed (for a self-hosted server the price is 0 unless you set one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_AS_OF = "2026-05"


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


PRICES: dict[str, Price] = {
    "gemini-2.0-flash-lite": Price(0.075, 0.30),  # retired by Google on 2026-06-01
    "gemini-2.0-flash": Price(0.10, 0.40),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o-mini": Price(0.15, 0.60),
}

# Hidden reasoning tokens per visible output token, by reasoning_effort: a rough guess for budgets.
REASONING_OVERHEAD = {"minimal": 0.2, "low": 1.0, "medium": 2.0, "high": 4.0}
CHARS_PER_TOKEN = 4.0  # English text with BPE tokenizers; other scripts need more tokens


def price_for(model: str, price_in: float | None = None, price_out: float | None = None) -> Price | None:
    """The listed price (a dated snapshot suffix like -2025-01-31 or -001 still matches), or the
    user's override; None when neither is known."""
    if price_in is not None or price_out is not None:
        return Price(float(price_in or 0.0), float(price_out or 0.0))
    name = model.split("/")[-1]
    for listed in sorted(PRICES, key=len, reverse=True):
        if name == listed or name.startswith(listed + "-"):
            return PRICES[listed]
    return None


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def estimate_output_tokens(sources: list[str], n: int, reasoning_effort: str | None = None) -> int:
    """n paraphrases about as long as each source, JSON framing, and reasoning overhead if any."""
    visible = sum(n * (estimate_tokens(s) + 6) + 12 for s in sources) + 8
    return math.ceil(visible * (1.0 + REASONING_OVERHEAD.get(reasoning_effort or "", 0.0)))
