"""What the explanation explorer (``/explore``) reads besides recommend/explain: a trained pipeline
run's users, their history, ESIM interests and behaviour tokens, and the counterfactual (the
permutation control of one pair). Built on the same objects the API serves.

Highlighting uses the faithfulness metrics' own matching (``llmrec.eval.faithfulness``), so what
the page marks is what the metrics count.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.interests.job import read_records, user_interests
from llmrec.serve.explainer import Explainer, ExplainQuery
from llmrec.serve.recommender import Recommender, UnknownId


class RunView:
    """A pipeline run folder (``llmrec pipeline``) opened for browsing: users, histories, interests,
    tokens; and the recommender and explainer that serve it."""

    def __init__(self, recommender: Recommender, explainer: Explainer, *, interests: Path | None = None):
        from llmrec.data.prepare import prepare

        self.rec, self.ex = recommender, explainer
        self.data = prepare(explainer.tok.cfg.data)
        items = self.data.items
        self.titles = ([str(items["title"].get(i, v)) for i, v in enumerate(self.data.item_vocab)]
                       if items is not None and "title" in items else list(self.data.item_vocab))
        self.index = {u: i for i, u in enumerate(self.data.user_vocab)}
        self.interests = read_records(interests) if interests is not None else {}

    @classmethod
    def from_pipeline(cls, run: str | Path, *, backend_kind: str = "hf", batch_size: int = 32,
                      backend: Any = None) -> "RunView":
        from llmrec.errors import ConfigError

        run = Path(run)
        serving = run / "backbone-signals" if (run / "backbone-signals" / "best.safetensors").exists() \
            else run / "backbone"
        if not (run / "align" / "final.safetensors").exists() or not (serving / "best.safetensors").exists():
            raise ConfigError(f"{run} is not a finished `llmrec pipeline` run (no align/ or backbone/ checkpoint)")
        ex = Explainer.from_run(run / "align", backend=backend, backend_kind=backend_kind, batch_size=batch_size)
        return cls(Recommender.from_run(serving), ex, interests=run / "interests")

    def _user(self, user: str) -> int:
        if user not in self.index:
            raise UnknownId("user", [user])
        return self.index[user]

    def search(self, q: str, limit: int = 20) -> list[dict[str, str]]:
        """Users whose id starts with ``q``, then users with a history title containing ``q``."""
        q = q.strip()
        if not q:
            return []
        out = [{"user_id": u, "match": "id"} for u in self.data.user_vocab if u.startswith(q)][:limit]
        low, seen = q.lower(), {o["user_id"] for o in out}
        for u, uid in enumerate(self.data.user_vocab):
            if len(out) >= limit:
                break
            if uid in seen:
                continue
            hit = next((self.titles[i] for i in self.data.item[self.data.rows(u)] if low in self.titles[i].lower()), None)
            if hit is not None:
                out.append({"user_id": uid, "match": hit})
        return out

    def history(self, user: str, limit: int = 50) -> list[dict[str, Any]]:
        """The user's interactions, latest first: title, behaviours, time, split (train/valid/test)."""
        from llmrec.data.prepare import TEST, TRAIN

        sl = self.data.rows(self._user(user))
        names = self.data.behavior_vocab
        split = {TRAIN: "train", TEST: "test"}
        out = []
        for r in range(sl.start, sl.stop)[::-1][:limit]:
            mask = int(self.data.behaviors[r]) if self.data.behaviors is not None else 0
            ts = self.data.timestamp[r] if self.data.timestamp is not None else None
            out.append({"item_id": self.data.item_vocab[int(self.data.item[r])],
                        "title": self.titles[int(self.data.item[r])],
                        "behaviours": [n for b, n in enumerate(names) if mask >> b & 1],
                        "time": None if ts is None or not np.isfinite(ts) else int(ts),
                        "split": split.get(int(self.data.split[r]), "valid")})
        return out

    def user_interests(self, user: str) -> dict[str, Any]:
        self._user(user)
        return user_interests(self.interests, user)

    def tokens(self, user: str) -> list[dict[str, Any]]:
        self._user(user)
        view = self.ex.tok.inspect("user", user, top=3)
        return [{"position": t["position"], "code": t["code"],
                 "phrases": [p["phrase"] for p in t["nearest_phrases"]]} for t in view["tokens"]]

    def donor(self, user: str, item: str) -> tuple[str, str]:
        """Another pair sharing neither the user nor the item, fixed per pair (hash-seeded)."""
        seed = int.from_bytes(hashlib.blake2b(f"{user}\0{item}".encode(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        users = [u for u in self.ex.tok.vocab["user"] if u != user]
        items = [i for i in self.ex.tok.vocab["item"][1:] if i != item]
        return users[int(rng.integers(len(users)))], items[int(rng.integers(len(items)))]

    def counterfactual_query(self, q: ExplainQuery) -> tuple[ExplainQuery, dict[str, str]]:
        """The explain query of the permutation control: the donor pair's user and item (so its
        evidence and tokens), the asked item's title."""
        if q.user_id not in self.ex.tok.index["user"]:
            raise UnknownId("user", [q.user_id])
        if self.ex._dense("item", q.item_id) is None:
            raise UnknownId("item", [q.item_id])
        du, di = self.donor(q.user_id, q.item_id)
        title = self.ex.titles.get(q.item_id) or self.titles[self.data.item_vocab.index(q.item_id)]
        return ExplainQuery(du, di, max_tokens=q.max_tokens, item_title=title), {"user_id": du, "item_id": di}
