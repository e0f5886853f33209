"""ESIM user texts: each user's recent TRAINING history as text.

Only rows of the data layer's train split are read (``Prepared.split == TRAIN``), so the valid and
test items never reach the embedding, the clustering or the LLM. A line per interaction comes from
a template in ``prompts/`` (default ``esim_history_item``); fields the data lacks render empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.data.prepare import TRAIN, Prepared
from llmrec.data.schema import behavior_names
from llmrec.errors import DataError
from llmrec.interests.config import UserTextConfig


@dataclass
class UserTexts:
    users: np.ndarray
    """(n,) dense ids of the users that have a text."""
    texts: list[str]
    n_titled: np.ndarray
    """(U,) titled training items per user (all users)."""
    template_hash: str


def item_fields(data: Prepared) -> tuple[list[str], list[str]]:
    """(titles, categories as 'a, b') per dense item id 0..N; '' where absent."""
    if data.items is None or "title" not in data.items:
        raise DataError(f"dataset {data.name!r} has no item titles: ESIM needs item texts")
    n = data.n_items + 1
    titles = data.items["title"].reindex(range(n)).fillna("").astype(str).str.strip().tolist()
    cats = (data.items["categories"].reindex(range(n)).fillna("").astype(str).tolist()
            if "categories" in data.items else [""] * n)
    return titles, [", ".join(c.strip() for c in x.replace("|", ",").split(",") if c.strip()) for x in cats]


def user_texts(data: Prepared, cfg: UserTextConfig) -> UserTexts:
    from llmrec.llm.prompts import load_prompt

    tmpl = load_prompt(cfg.template)
    titles, cats = item_fields(data)
    multi = len(data.behavior_vocab) > 1
    users, texts = [], []
    n_titled = np.zeros(data.n_users, dtype=np.int64)
    for u in range(data.n_users):
        sl = data.rows(u)
        keep = data.split[sl] == TRAIN
        items, ratings, behav = data.item[sl][keep], data.rating[sl][keep], data.behaviors[sl][keep]
        n_titled[u] = sum(1 for i in items if titles[i])
        if n_titled[u] == 0 or n_titled[u] < cfg.min_titled:
            continue
        lines = []
        for i, r, b in zip(items[-cfg.window:], ratings[-cfg.window:], behav[-cfg.window:]):
            if not titles[i] and not cats[i]:
                continue  # nothing to say about an item with neither title nor category
            values = {"title": titles[i] or "untitled item",
                      "categories": f" ({cats[i]})" if cats[i] else "",
                      "rating": "" if np.isnan(r) else f", rated {r:g}",
                      "behaviors": f" [{', '.join(behavior_names(int(b), data.behavior_vocab))}]" if multi else ""}
            lines.append("".join(tmpl.render(**values)))
        if lines:
            users.append(u)
            texts.append(cfg.separator.join(lines))
    return UserTexts(users=np.asarray(users, dtype=np.int64), texts=texts, n_titled=n_titled,
                     template_hash=tmpl.hash)


def for_encoder(text: str, separator: str = "\n") -> str:
    """The text as the sentence encoder reads it: newest line first, so that when the text is longer
    than the encoder's window (MiniLM: 256 word pieces, about 17 ML-100k lines) the oldest lines are
    the ones cut, not the most recent."""
    return separator.join(reversed(text.split(separator)))


def heldout_items(data: Prepared, u: int) -> np.ndarray:
    """Valid and test items of user ``u``: for evaluating coverage only, never for extraction."""
    sl = data.rows(u)
    return data.item[sl][data.split[sl] != TRAIN]


def train_items(data: Prepared, u: int) -> np.ndarray:
    sl = data.rows(u)
    return data.item[sl][data.split[sl] == TRAIN]
