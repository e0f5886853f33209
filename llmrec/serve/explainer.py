"""Explanations for serving: a trained stage-2 run (frozen LLM + projection) reading the stage-1
behaviour tokens of a user and an item, one batched generation per call.

A user or item the stage-1 tokenizer never saw gets its tokens from the tokenizer's cold-start
path when the request carries evidence: its interactions (item ids for a user, user ids for an
item; the mean LightGCN embedding of those neighbours, quantised) or its text (nearest entities by
intention phrases, majority code per position). The evidence variants take a new USER's picked
items as its history (their titles nearest the item are the evidence); the controls (per-id
tokens, profiles) and a new item under the evidence variants answer 422.

Requests in one batch may ask for different ``max_tokens``: the batch generates greedily up to the
largest and each answer is cut to its own budget. Greedy decoding is token-by-token, so the cut is
what that request alone would have produced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llmrec.errors import DataError
from llmrec.serve.recommender import NotSupported, UnknownId


def matches(text: str, evidence: dict[str, Any] | None, title: str, catalogue: list[str]) -> dict[str, list[str]]:
    """Names in an explanation: those from its evidence (titles, interests, glosses), the item's own
    title, and catalogue titles in neither (hallucinated), by the metrics' normalised matching."""
    from llmrec.eval import faithfulness as fm

    if not evidence:
        return {"evidence": [], "item": fm.named(text, [title]), "hallucinated": []}
    allowed = evidence["titles"] + evidence["interests"] + evidence["glosses"]
    _, found = fm.hallucinated_titles([text], catalogue, [allowed], [title])
    return {"evidence": fm.named(text, allowed), "item": fm.named(text, [title]), "hallucinated": found[0]}


@dataclass
class ExplainQuery:
    user_id: str
    item_id: str
    max_tokens: int = 48
    user_interactions: list[str] | None = None
    user_text: str | None = None
    item_interactions: list[str] | None = None
    item_text: str | None = None
    item_title: str | None = None


@dataclass
class Resolved:
    """One request made ready for the LLM: a pair row, its token codes, its budget."""

    query: ExplainQuery
    row: dict[str, Any]
    tokens: dict[str, dict[str, int]] | None
    cold_start: list[str] = field(default_factory=list)
    evidence: Any = None
    """The pair's Evidence (evidence variants), built from the request's items for a new user."""


class Explainer:
    def __init__(self, stage2: Any, *, run_dir: str | Path):
        from llmrec.alignment.sources import BehaviourTokens

        self.s = stage2
        self.tok = stage2.tokenizer
        self.beat = isinstance(stage2.aligner.source, BehaviourTokens)
        pairs = stage2.pairs
        index = stage2.aligner.evidence
        self.catalogue = sorted(set(index.titles.values())) if index is not None else []
        self.titles = dict(zip(pairs["item_raw"].astype(str), pairs["title"]))
        self.user_summary = dict(zip(pairs["user_raw"].astype(str), pairs["user_summary"]))
        self.item_summary = dict(zip(pairs["item_raw"].astype(str), pairs["item_summary"]))
        cfg = stage2.cfg
        self.name = f"{cfg.model.llm} / {cfg.model.variant}"
        self.info = {"name": self.name, "run": str(run_dir), "llm": cfg.model.llm, "variant": cfg.model.variant,
                     "backend": type(stage2.backend).__name__, "prompt": stage2.aligner.template.name,
                     "prompt_hash": stage2.aligner.template.hash,
                     "token_positions": stage2.aligner.source.names if self.beat else [],
                     "cold_start": self.beat}

    @classmethod
    def from_run(cls, run_dir: str | Path, *, backend: Any = None, backend_kind: str = "hf",
                 batch_size: int = 32) -> "Explainer":
        """``run_dir``: a stage-2 run folder (``llmrec align train``). ``backend``: an LLM backend
        already loaded (tests); else ``backend_kind`` (``hf`` or ``vllm``) loads the run's LLM."""
        from llmrec.alignment.train import load_run

        s = load_run(run_dir, backend=backend, backend_kind=backend_kind)
        if hasattr(s.backend, "batch_size"):  # the HF path splits a call into chunks of this size
            s.backend.batch_size = batch_size
        return cls(s, run_dir=run_dir)

    def close(self) -> None:
        """Release the LLM runtime's processes (vLLM), if it has any."""
        close = getattr(self.s.backend, "close", None)
        if close is not None:
            close()

    def _catalogue_title(self, dense_item: int) -> str | None:
        """The dataset's title of an item outside the reference pairs (evidence variants index them all)."""
        index = self.s.aligner.evidence
        return index.titles.get(int(dense_item)) if index is not None and dense_item else None

    # -- ids and cold start ------------------------------------------------------------------------
    def _dense(self, side: str, raw: str) -> int | None:
        """The stage-1 dense id of a raw id, None if unknown (item 0 is padding, not an item)."""
        idx = self.tok.index[side].get(raw)
        return None if idx is None or (side == "item" and idx == 0) else idx

    def _codes(self, side: str, raw: str, interactions: list[str] | None, text: str | None
               ) -> tuple[int, list[int] | None, bool]:
        """(dense id or 0, codes at every token position or None, cold-started?)."""
        tok = self.tok
        idx = self._dense(side, raw)
        if idx is not None:
            return idx, (tok.codes(side)[idx].tolist() if self.beat else None), False
        if not (interactions or text):
            raise UnknownId(side, [raw])
        if not self.beat and self.s.aligner.evidence is not None and side == "user" and interactions:
            unknown = [r for r in interactions if self._dense("item", r) is None]
            if unknown:
                raise UnknownId("item", unknown)
            return 0, None, True  # the evidence variants read the picked items' titles (resolve)
        if not self.beat:
            raise NotSupported(f"the {self.info['variant']} variant reads no behaviour tokens, so the new "
                               f"{side} {raw!r} cannot be folded in from its evidence")
        if interactions:
            other = "item" if side == "user" else "user"
            neighbours = [self._dense(other, r) for r in interactions]
            unknown = [r for r, n in zip(interactions, neighbours) if n is None]
            if unknown:
                raise UnknownId(other, unknown)
        try:
            if interactions:
                codes = tok.assign_from_interactions(side, neighbours)["codes"]
            else:
                codes = tok.assign_from_text(side, text)["codes"]
        except DataError as exc:  # e.g. a stage-1 run without intention phrases has no text path
            raise NotSupported(f"cannot assign tokens to the new {side} {raw!r}: {exc}") from None
        return 0, [int(c) for c in codes], True

    def resolve(self, q: ExplainQuery) -> Resolved:
        """Validate the ids (UnknownId / NotSupported) and build the pair's row."""
        u, u_codes, u_cold = self._codes("user", q.user_id, q.user_interactions, q.user_text)
        i, i_codes, i_cold = self._codes("item", q.item_id, q.item_interactions, q.item_text)
        row = {"id": f"{q.user_id}:{q.item_id}", "user": u, "item": i,
               "title": q.item_title or self.titles.get(q.item_id) or self._catalogue_title(i) or q.item_id,
               "user_summary": q.user_text or self.user_summary.get(q.user_id, ""),
               "item_summary": q.item_text or self.item_summary.get(q.item_id, ""), "reference": ""}
        evidence = None
        if self.s.aligner.evidence is not None:
            index = self.s.aligner.evidence
            if u_cold:
                evidence = index.for_history([self._dense("item", r) for r in q.user_interactions or []], i)
                row["evidence_text"] = evidence.text()
            else:
                evidence = index(u, i)
        tokens = None
        if self.beat:
            row.update(user_codes=u_codes, item_codes=i_codes)
            names = self.tok.token_names()
            tokens = {"user": dict(zip(names, u_codes)), "item": dict(zip(names, i_codes))}
        return Resolved(q, row, tokens, [s for s, c in (("user", u_cold), ("item", i_cold)) if c], evidence)

    # -- generation --------------------------------------------------------------------------------
    @torch.no_grad()
    def explain_batch(self, batch: list[Resolved]) -> list[dict[str, Any]]:
        """One batched generation for all of ``batch``; answers in order."""
        from llmrec.llm.backend import GenerationParams

        rows = pd.DataFrame([r.row for r in batch])
        budget = max(r.query.max_tokens for r in batch)
        t0 = time.perf_counter()
        with self.s.aligner.autocast():
            reqs, _ = self.s.aligner.requests(rows)
            gens = self.s.backend.generate(reqs, GenerationParams(max_new_tokens=budget))
        ms = (time.perf_counter() - t0) * 1000
        decode = self.s.backend.tokenizer.decode
        out = []
        for r, g in zip(batch, gens):
            ids = g.token_ids[:r.query.max_tokens]
            text = g.text if len(ids) == len(g.token_ids) else decode(ids, skip_special_tokens=True)
            out.append({"user_id": r.query.user_id, "item_id": r.query.item_id, "explanation": " ".join(text.split()),
                        "title": r.row["title"], "behaviour_tokens": r.tokens, "cold_start": r.cold_start,
                        "evidence": r.evidence.as_dict() if r.evidence is not None else None,
                        "matches": matches(" ".join(text.split()), r.evidence.as_dict() if r.evidence is not None
                                           else None, r.row["title"], self.catalogue),
                        "generated_tokens": len(ids), "batch_size": len(batch), "batch_ms": round(ms, 1)})
        return out

    def explain(self, q: ExplainQuery) -> dict[str, Any]:
        """One explanation, unbatched (the Python API's simple path)."""
        return self.explain_batch([self.resolve(q)])[0]

