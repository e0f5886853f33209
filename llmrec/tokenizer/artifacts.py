"""A trained tokenizer loaded from its run folder: inspection and cold-start assignment.

Cold start, two routes (BEAT: "tokens can be borrowed from neighbours"):
- from interactions: a new user's graph embedding is the mean of its items' final LightGCN
  embeddings (one propagation step from its neighbours; the mean, not the degree-weighted sum, so
  its scale matches the trained embeddings better), then the user's quantisers assign its tokens.
  The same holds for a new item from its users.
- from text only: the text is embedded by the sentence encoder and compared with the entities
  that have intention phrases (mean phrase embedding); each token position takes the most common
  code among the k nearest (ties: the nearest neighbour's code).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.config import from_dict
from llmrec.errors import ConfigError, DataError
from llmrec.tokenizer.config import TokenizerRunConfig
from llmrec.tokenizer.edges import EdgeSplit
from llmrec.tokenizer.graph import normalized_adjacency
from llmrec.tokenizer.model import BehaviorTokenizer
from llmrec.train.checkpoint import load_checkpoint


class TrainedTokenizer:
    def __init__(self, run_dir: str | Path, *, encoder: Any = None):
        self.dir = Path(run_dir)
        for name in ("config.json", "best.safetensors", "tokens.npz", "vocab.json"):
            if not (self.dir / name).exists():
                raise DataError(f"not a tokenizer run folder: {name} is missing (run `llmrec tokenizer train`)",
                                path=str(self.dir))
        values = json.loads((self.dir / "config.json").read_text())
        # runs written before hash splits existed used the permutation split (version 1)
        values.get("data", {}).setdefault("explanation_split_version", 1)
        self.cfg: TokenizerRunConfig = from_dict(TokenizerRunConfig, values)
        vocab = json.loads((self.dir / "vocab.json").read_text())
        self.vocab = {"user": vocab["user"], "item": vocab["item"]}
        self.index = {side: {v: i for i, v in enumerate(ids)} for side, ids in self.vocab.items()}
        arrays = np.load(self.dir / "tokens.npz")
        self.arrays = {k: arrays[k] for k in arrays.files}
        self.split = EdgeSplit.from_arrays({k[6:]: v for k, v in self.arrays.items() if k.startswith("edges_")})
        n_users, n_items = len(self.vocab["user"]), len(self.vocab["item"]) - 1
        self.model = BehaviorTokenizer(self.cfg.model, n_users=n_users, n_items=n_items)
        self.model.load_state_dict(load_checkpoint(self.dir / "best.safetensors")["model"])
        self.model.eval()
        self.adj = normalized_adjacency(self.split.train[:, 0], self.split.train[:, 1], n_users, n_items)
        self.records = self._read_records()
        self._encoder = encoder
        self._graph: tuple[torch.Tensor, torch.Tensor] | None = None

    def _read_records(self) -> dict[str, dict[int, dict]]:
        out: dict[str, dict[int, dict]] = {"user": {}, "item": {}}
        path = self.dir / "intentions.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                out[r["side"]][r["id"]] = r
        return out

    @property
    def encoder(self):
        if self._encoder is None:
            from llmrec.llm.encoder import SentenceEncoder

            self._encoder = SentenceEncoder(self.cfg.semantic.encoder)
        return self._encoder

    def graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._graph is None:
            with torch.no_grad():
                self._graph = self.model.propagate(self.adj)
        return self._graph

    def dense_id(self, side: str, raw: str) -> int:
        idx = self.index[side].get(str(raw))
        if idx is None or (side == "item" and idx == 0):
            raise DataError(f"unknown {side} id {raw!r} in {self.dir} (ids are the dataset's own, e.g. "
                            f"{self.vocab[side][1]!r})")
        return idx

    def codes(self, side: str) -> np.ndarray:
        if self.cfg.model.plain_lightgcn:
            raise ConfigError("a plain LightGCN run has no tokens")
        return self.arrays[f"{side}_codes"]

    def token_names(self) -> list[str]:
        names = ["macro"] if self.cfg.model.use_macro else []
        return names + ([f"micro{j}" for j in range(self.cfg.model.n_micro)] if self.cfg.model.use_micro else [])

    def codebook(self, side: str, position: int) -> tuple[str, np.ndarray]:
        level = "macro" if self.token_names()[position] == "macro" else "micro"
        return f"{side}_{level}", self.arrays[f"codebook_{side}_{level}"]

    # -- interpretability view -----------------------------------------------------------------
    def inspect(self, side: str, raw_id: str, *, top: int = 5) -> dict[str, Any]:
        """The entity's tokens; for each, how many entities share it (and a few of them) and the
        intention phrases nearest its codeword."""
        idx = self.dense_id(side, raw_id)
        codes = self.codes(side)
        rows = codes[1:] if side == "item" else codes
        offset = 1 if side == "item" else 0
        phrases, vecs = self._phrase_bank()
        tokens = []
        for pos, name in enumerate(self.token_names()):
            code = int(codes[idx, pos])
            sharing = np.flatnonzero((rows == code).any(1) if name != "macro" else rows[:, pos] == code) + offset
            book_name, book = self.codebook(side, pos)
            near = []
            if len(phrases):
                sims = vecs @ book[code]
                near = [{"phrase": phrases[j], "cosine": round(float(sims[j]), 3)}
                        for j in np.argsort(-sims)[:top]]
            tokens.append({"position": name, "codebook": book_name, "code": code,
                           "entities_sharing": int(len(sharing)),
                           "examples": [self.vocab[side][j] for j in sharing[sharing != idx][:top]],
                           "nearest_phrases": near})
        rec = self.records[side].get(idx)
        return {"side": side, "id": raw_id, "tokens": tokens,
                "own_phrases": rec["phrases"] if rec else [], "phrase_source": rec["status"] if rec else None}

    def _phrase_bank(self) -> tuple[list[str], np.ndarray]:
        path = self.dir / "phrases.npz"
        if path.exists():
            bank = np.load(path, allow_pickle=False)
            return list(bank["phrases"]), bank["emb"]
        return [], np.zeros((0, self.cfg.model.code_dim), np.float32)

    # -- cold start --------------------------------------------------------------------------------
    @torch.no_grad()
    def assign_from_interactions(self, side: str, neighbours: Sequence[int]) -> dict[str, Any]:
        """Tokens for a new entity from the dense ids of the entities it interacted with (items
        for a user, users for an item)."""
        users, items = self.graph()
        other = items if side == "user" else users
        ids = torch.as_tensor(np.asarray(neighbours, dtype=np.int64))
        if len(ids) == 0:
            raise DataError(f"a new {side} needs at least one known interaction (or use its text)")
        z = other[ids].mean(0, keepdim=True)  # (1, D)
        tok = self.model.tokenize(side, z)
        return {"codes": tok.codes[0].tolist(), "tokens": self.model.text_tokens(side, tok)[0],
                "vector": F.normalize(tok.behaviour(), dim=-1)[0]}  # (D,) what ranking scores with

    @torch.no_grad()
    def assign_from_text(self, side: str, text: str, *, k: int = 5) -> dict[str, Any]:
        recs = self.records[side]
        if not recs:
            raise DataError(f"no {side} of {self.dir} has intention phrases to compare the text with")
        ids = np.array(sorted(recs))
        phrases, vecs = self._phrase_bank()
        where = {p: j for j, p in enumerate(phrases)}
        means = np.stack([vecs[[where[p] for p in recs[int(i)]["phrases"] if p in where]].mean(0) for i in ids])
        means = F.normalize(torch.as_tensor(means), dim=-1)
        query = torch.as_tensor(self.encoder.encode([text]))[0]
        near = ids[torch.argsort(means @ query, descending=True)[:k].numpy()]
        codes = self.codes(side)[near]  # (k, T)
        voted = []
        for col in codes.T:
            code, count = Counter(col.tolist()).most_common(1)[0]
            voted.append(code if count > 1 else int(col[0]))  # no majority: the nearest neighbour's
        return {"codes": voted, "neighbours": [self.vocab[side][int(i)] for i in near]}

    def tokens_for_codes(self, side: str, codes: Sequence[int]) -> torch.Tensor:
        """(T, C) codewords of a code sequence (stage 2 reads these)."""
        return torch.stack([torch.as_tensor(self.codebook(side, pos)[1][c]) for pos, c in enumerate(codes)])
