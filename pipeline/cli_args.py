"""Argument parsing that fails the way the rest of the CLI does: one `error:` line, status 2."""
from __future__ import annotations

import argparse
import math
from typing import Callable

from schemas.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse answers a bad option with a usage dump and its own exit; every other user error
    here is one `error:` line and status 2, so parsing errors become `UserError` too."""

    def error(self, message: str):
        raise UserError(f"{message} (see `{self.prog} --help`)")


def number(kind: type, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> Callable[[str], int | float]:
    """An argparse `type` that checks the range up front, so a bad value fails in one line naming
    the option, the value and the range instead of deep inside a stage."""
    noun = "an integer" if kind is int else "a number"
    if high is not None:
        allowed = f"must be {noun} in [{low:g}, {high:g}]"
    else:
        allowed = f"must be {noun} {'>' if low_open else '>='} {low:g}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; {allowed}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"got {text}; {allowed}")
        return value

    return parse


COUNT, NONNEGATIVE, SHARE = number(int, 1), number(int, 0), number(float, 0.0, 1.0)
