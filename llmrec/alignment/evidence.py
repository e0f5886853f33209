"""Evidence for explaining a (user, item) pair: what the system actually knows about it.

The evidence of a pair is
- the user's TRAINING-history items most related to the target item (never the target itself, and
  never an item of the user's valid / test / zero-shot explanation pairs), ranked by cosine of
  their stage-1 LightGCN item embeddings to the target's, keeping those with a title (top
  ``k_titles``);
- token glosses: the intention phrase nearest to each of the user's and the item's behaviour tokens
  (stage 1's phrase bank, built from training texts only), when the stage-1 run has one;
- the user's ESIM interests, when an interests artifact is given.

When the user has no titled history, the evidence falls back to glosses and interests and says so
(``fallback``). A note on the graph that ranks the evidence: stage 1 holds out a uniform share of
ALL edges; an evaluation pair's own edge is therefore in its training graph with that share's
probability and is not removed. The target item's embedding may so carry a trace of this user;
the evidence never contains the target item or any held-out pair's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data.prepare import TRAIN, Prepared

HELD_OUT = ("valid", "test", "zero_shot")


@dataclass
class Evidence:
    titles: list[str] = field(default_factory=list)
    """Titles of the user's training-history items nearest the target (most related first)."""
    glosses: list[str] = field(default_factory=list)
    """Nearest intention phrase per behaviour token of the user and the item (distinct, in order)."""
    interests: list[str] = field(default_factory=list)
    """The user's ESIM interest phrases."""
    fallback: bool = False
    """True when the user had no titled training history (glosses and interests only)."""

    def text(self) -> str:
        """The evidence as the prompt shows it (and as evidence identification ranks it)."""
        parts = []
        if self.titles:
            parts.append("liked before: " + "; ".join(self.titles))
        if self.interests:
            parts.append("interests: " + ", ".join(self.interests))
        if self.glosses:
            parts.append("behaviour: " + ", ".join(self.glosses))
        return "\n".join(parts) if parts else "no history"

    def as_dict(self) -> dict[str, Any]:
        return {"titles": self.titles, "glosses": self.glosses, "interests": self.interests,
                "fallback": self.fallback, "text": self.text()}


def title_key(title: str) -> str:
    """Normalised form for matching titles in text: lower case, runs of non-alphanumerics -> one space."""
    return re.sub(r"[^0-9a-z]+", " ", str(title).lower()).strip()


class EvidenceIndex:
    """Builds :class:`Evidence` for any (dense user, dense item) of a prepared dataset."""

    def __init__(self, data: Prepared, item_embeddings: np.ndarray, *, pairs: pd.DataFrame | None = None,
                 k_titles: int = 3, phrases: dict[str, dict[int, list[str]]] | None = None,
                 interests: dict[int, list[str]] | None = None):
        self.data, self.k = data, k_titles
        emb = np.asarray(item_embeddings, dtype=np.float32)
        self.emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        titles = data.items["title"] if data.items is not None and "title" in data.items else None
        self.titles = {int(i): str(t) for i, t in titles.items() if str(t).strip()} if titles is not None else {}
        self.held = self._held_out(pairs)
        self.phrases = phrases or {"user": {}, "item": {}}
        self.interests = interests or {}
        self._built: dict[tuple[int, int], Evidence] = {}  # prompt, side info and scoring ask for the same pair

    @staticmethod
    def _held_out(pairs: pd.DataFrame | None) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        if pairs is not None:
            part = pairs.loc[pairs["split"].isin(HELD_OUT)]
            for u, i in zip(part["user"], part["item"]):
                out.setdefault(int(u), set()).add(int(i))
        return out

    def history(self, user: int) -> np.ndarray:
        """The user's training-split items (dense ids, distinct, in time order)."""
        rows = self.data.rows(int(user))
        items = self.data.item[rows][self.data.split[rows] == TRAIN]
        _, first = np.unique(items, return_index=True)
        return items[np.sort(first)]

    def titled_history(self, user: int, item: int) -> list[int]:
        """The user's training items with a title, most related to ``item`` first (not ``item``
        itself, nor an item of the user's held-out explanation pairs)."""
        banned = self.held.get(int(user), set()) | {int(item)}
        cands = np.array([c for c in self.history(user) if int(c) not in banned and int(c) in self.titles],
                         dtype=np.int64)
        if not len(cands):
            return []
        sims = self.emb[cands] @ self.emb[int(item)]
        return [int(c) for c in cands[np.argsort(-sims, kind="stable")]]

    def for_history(self, items: list[int], item: int) -> Evidence:
        """Evidence of a user the index does not know (cold start), from the items they picked: the
        titled ones nearest ``item`` (never ``item`` itself); no glosses or interests (none exist)."""
        cands = np.array(sorted({int(c) for c in items if int(c) != int(item) and int(c) in self.titles}),
                         dtype=np.int64)
        titles: list[str] = []
        if len(cands) and int(item) > 0:
            cands = cands[np.argsort(-(self.emb[cands] @ self.emb[int(item)]), kind="stable")]
        for c in cands:
            if self.titles[int(c)] not in titles:
                titles.append(self.titles[int(c)])
            if len(titles) == self.k:
                break
        return Evidence(titles=titles, fallback=not titles)

    def __call__(self, user: int, item: int) -> Evidence:
        key = (int(user), int(item))
        if key not in self._built:
            self._built[key] = self._build(*key)
        return self._built[key]

    def _build(self, user: int, item: int) -> Evidence:
        ranked = self.titled_history(user, item)
        titles = []
        for c in ranked:  # distinct titles (a catalogue may repeat a name)
            if self.titles[c] not in titles:
                titles.append(self.titles[c])
            if len(titles) == self.k:
                break
        glosses = []
        for p in self.phrases["user"].get(int(user), []) + self.phrases["item"].get(int(item), []):
            if p not in glosses:
                glosses.append(p)
        return Evidence(titles=titles, glosses=glosses[:6], interests=list(self.interests.get(int(user), []))[:5],
                        fallback=not titles)


def token_glosses(tokenizer: Any) -> dict[str, dict[int, list[str]]]:
    """Nearest intention phrase of each behaviour token of every user and item, from the stage-1
    run's phrase bank (empty where the run has none, e.g. trained without intention phrases)."""
    out: dict[str, dict[int, list[str]]] = {"user": {}, "item": {}}
    if tokenizer is None or getattr(tokenizer.cfg.model, "plain_lightgcn", False):
        return out
    bank = tokenizer._phrase_bank() if (tokenizer.dir / "phrases.npz").exists() else None
    if not bank or not len(bank[0]):
        return out
    phrases, pemb = bank
    pemb = pemb / np.maximum(np.linalg.norm(pemb, axis=1, keepdims=True), 1e-12)
    for side in ("user", "item"):
        codes = tokenizer.codes(side)  # (N, P) code ids per token position
        nearest_per_pos = []
        for pos in range(codes.shape[1]):
            _, book = tokenizer.codebook(side, pos)  # (C, D) codewords in the encoder's space
            book = book / np.maximum(np.linalg.norm(book, axis=1, keepdims=True), 1e-12)
            nearest_per_pos.append(np.argmax(book @ pemb.T, axis=1))  # (C,)
        for ent in range(codes.shape[0]):
            out[side][ent] = [str(phrases[nearest_per_pos[p][codes[ent, p]]]) for p in range(codes.shape[1])]
    return out


def read_interests(run: str, user_vocab: list[str]) -> dict[int, list[str]]:
    """ESIM interest phrases by dense user id (strongest first) from an interests run folder or its
    ``artifact/``; users the artifact lacks (or holds without interests) get none."""
    import json
    from pathlib import Path

    from llmrec.errors import DataError

    folder = Path(run)
    path = folder / "artifact" / "interests.jsonl" if (folder / "artifact").is_dir() else folder / "interests.jsonl"
    if not path.exists():
        raise DataError(f"model.evidence_interests: {path} does not exist (a finished `llmrec interests "
                        "extract` run?)")
    index = {u: i for i, u in enumerate(user_vocab)}
    out: dict[int, list[str]] = {}
    with path.open() as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                phrases = [str(x["interest"]) for x in sorted(rec["interests"], key=lambda x: -x["weight"])]
                user = str(rec["user"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path} line {n}: not an interests record ({exc})") from None
            if user in index and phrases:
                out[index[user]] = phrases
    return out


def ranker_embeddings(run: str, item_vocab: list[str]) -> np.ndarray:
    """(n_items + 1, D) item embeddings of a trained backbone run (its best checkpoint), rows in
    ``item_vocab`` order: the pipeline ranks a user's history by its own backbone."""
    from pathlib import Path

    import torch

    from llmrec.errors import DataError
    from llmrec.train.checkpoint import load_model

    path = Path(run) / "best.safetensors" if Path(run).is_dir() else Path(run)
    model, ck = load_model(path, "cpu")
    with torch.no_grad():
        emb = getattr(model, "base", model).item_embeddings().float().cpu().numpy()
    vocab = ck["item_vocab"]
    if len(vocab) != len(emb):
        raise DataError(f"{path}: {len(emb)} item embeddings for {len(vocab)} vocabulary entries")
    row = {v: r for r, v in enumerate(vocab)}
    missing = [v for v in item_vocab[1:] if v not in row]
    if missing:
        raise DataError(f"model.evidence_ranker: {path} does not know items {missing[:3]} of the stage-1 data")
    out = np.zeros((len(item_vocab), emb.shape[1]), dtype=np.float32)
    out[1:] = emb[[row[v] for v in item_vocab[1:]]]
    return out
