"""The one canonical interaction table every loader produces.

``RawData.inter`` columns (raw ids, before remapping):

=============  ======================================================================
user, item     str ids as they appear in the source
timestamp      float seconds (NaN when the source has none)
behaviors      int64 bit mask over ``behavior_vocab`` (bit j = behaviour j present)
scene          str category, optional ("" when absent)
rating         float, optional (NaN when absent)
review         str, optional
=============  ======================================================================

``items`` has item, title, categories (str, '|' separated), description; ``users`` has user plus
any profile columns; ``explanations`` has user, item, explanation plus optional extra text fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INTER_COLUMNS = ["user", "item", "timestamp", "behaviors", "scene", "rating", "review"]


@dataclass
class RawData:
    name: str
    inter: pd.DataFrame
    behavior_vocab: list[str]
    target_behavior: str
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    explanations: pd.DataFrame | None = None
    derived: list[str] = field(default_factory=list)
    """Human-readable labels of derived signals (e.g. 'behaviours derived from ratings')."""
    sources: list[str] = field(default_factory=list)
    """Files read; they key the processed-dataset cache."""
    dropped_rows: dict[str, int] = field(default_factory=dict)
    """Rows dropped, by reason: malformed rows under on_bad_rows=skip, and rows a loader drops by rule."""
    split: np.ndarray | None = None
    """(M,) the release's own split per row ("train" / "test"), for data.split=release."""
    split_by: str = "the release's own split"
    """Who made ``split``, for the protocol line (a loader that splits an unsplit log says so)."""
    pairs_held_out_whole: bool = False
    """The release removed every training row of a test (user, item) pair; the valid pick mirrors it."""
    caveats: list[str] = field(default_factory=list)
    """What a reader of any result on this data must know (carried into stats and results)."""

    @property
    def has_timestamp(self) -> bool:
        return bool(self.inter["timestamp"].notna().any())

    @property
    def target_bit(self) -> int:
        return 1 << self.behavior_vocab.index(self.target_behavior)


def canonical_frame(n: int, **columns) -> pd.DataFrame:
    """Build an interaction frame with every canonical column, filling the absent ones."""
    defaults = {
        "timestamp": np.full(n, np.nan),
        "behaviors": np.ones(n, dtype=np.int64),
        "scene": np.full(n, "", dtype=object),
        "rating": np.full(n, np.nan),
        "review": np.full(n, "", dtype=object),
    }
    data = {}
    for col in INTER_COLUMNS:
        value = columns.get(col)
        data[col] = defaults[col] if value is None else value
    frame = pd.DataFrame(data)
    frame["user"] = frame["user"].astype(str)
    frame["item"] = frame["item"].astype(str)
    frame["timestamp"] = frame["timestamp"].astype(float)
    frame["behaviors"] = frame["behaviors"].astype(np.int64)
    frame["rating"] = frame["rating"].astype(float)
    return frame


def behavior_names(mask: int, vocab: list[str]) -> list[str]:
    return [b for j, b in enumerate(vocab) if mask >> j & 1]
