"""What every benchmark script shares on its command line: argument types that refuse nonsense
in argparse's one line, and moncae's refusals (an unknown dataset or preset, a bad setting) as
one `error:` line with exit code 2 instead of a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from moncae.errors import MoncaeError


def _number(kind: type, low: float, words: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {words}") from None
        if not value >= low or value != value:
            raise argparse.ArgumentTypeError(f"{text!r} is not {words}")
        return value
    parse.__name__ = words  # argparse names the type by it in "invalid ... value"
    return parse


positive_int = _number(int, 1, "an integer >= 1")
non_negative_int = _number(int, 0, "an integer >= 0")
positive_float = _number(float, 1e-300, "a number > 0")


def run(main: Callable[[], None]) -> None:
    """Run a script's `main`; a setting moncae refuses is one line on stderr and exit code 2."""
    try:
        main()
    except MoncaeError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
