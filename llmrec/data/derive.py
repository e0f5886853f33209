"""Derived signals, opt-in by config and labelled "derived" in every output that uses them.

They let MovieLens (ratings, timestamps) exercise the multi-behaviour and scene models on real
data. Behaviours from ratings: every row is ``rated``; ``liked`` when rating >= 4; ``disliked``
when rating <= 2 (sets such as {rated, liked} co-occur). Scenes from time, in UTC:
``daypart`` (night 0-5 h, morning 6-11 h, afternoon 12-17 h, evening 18-23 h) or ``weekday``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.schema import RawData
from llmrec.errors import ConfigError

RATING_BEHAVIORS = ["rated", "liked", "disliked"]
LIKED_MIN, DISLIKED_MAX = 4.0, 2.0
DAYPARTS = np.array(["night"] * 6 + ["morning"] * 6 + ["afternoon"] * 6 + ["evening"] * 6)
WEEKDAYS = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])


def behaviors_from_ratings(rating: np.ndarray) -> np.ndarray:
    """Bit masks over RATING_BEHAVIORS: bit 0 rated, bit 1 liked, bit 2 disliked."""
    rating = np.asarray(rating, dtype=float)
    return (1 | (rating >= LIKED_MIN).astype(np.int64) << 1
            | (rating <= DISLIKED_MAX).astype(np.int64) << 2)


def scenes_from_time(timestamp: np.ndarray, kind: str) -> np.ndarray:
    stamps = pd.to_datetime(np.asarray(timestamp, dtype=float), unit="s", utc=True)
    if kind == "daypart":
        return DAYPARTS[stamps.hour.to_numpy()]
    if kind == "weekday":
        return WEEKDAYS[stamps.day_of_week.to_numpy()]
    raise ConfigError(f"data.derive_scenes: unknown kind {kind!r}")


def apply_derivations(raw: RawData, cfg: DataConfig) -> RawData:
    inter = raw.inter
    if cfg.derive_behaviors:
        if inter["rating"].isna().all():
            raise ConfigError(f"data.derive_behaviors needs ratings; {raw.name} has none")
        inter["behaviors"] = behaviors_from_ratings(inter["rating"].fillna(0).to_numpy())
        raw.behavior_vocab = list(RATING_BEHAVIORS)
        raw.target_behavior = "rated"
        raw.derived.append("behaviours derived from ratings (rated; liked: rating >= 4; "
                           "disliked: rating <= 2)")
    if cfg.derive_scenes != "none":
        if not raw.has_timestamp:
            raise ConfigError(f"data.derive_scenes needs timestamps; {raw.name} has none")
        inter["scene"] = scenes_from_time(inter["timestamp"].fillna(0).to_numpy(), cfg.derive_scenes)
        raw.derived.append(f"scenes derived from time ({cfg.derive_scenes}, UTC)")
    return raw
