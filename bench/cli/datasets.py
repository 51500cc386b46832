"""`python -m bench datasets [NAME]`: the registered datasets' cards (layout, sources, conventions)."""
from __future__ import annotations

from typing import Optional

from bench.data.catalog import CARDS, DATASETS, card_of


def datasets_command(name: Optional[str]) -> int:
    """Every dataset in three lines, or one dataset's whole card."""
    if name:
        print(card_of(name).describe())
        return 0
    pad = " " * 16
    for card in (CARDS[n] for n in DATASETS.names()):
        print(f"{card.name:<16}{card.title}" + (f" (test only; trained on {card.train_on})" if card.train_on else ""))
        print(f"{pad}{card.classes}; {card.folds}")
        print(f"{pad}episodes: {card.episodes}; evaluation: {card.eval_size}")
    print("\n`python -m bench datasets NAME` shows a dataset's layout, where to get it and how to build it")
    return 0
