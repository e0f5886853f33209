"""Text supervision for the behaviour tokenizer: training texts, intention extraction, phrase tensors.

Only texts of ``train`` explanation pairs are ever read (``Prepared.explanations.split``), so
entities of the zero-shot, valid and test splits carry no text of their held-out pairs, and
zero-shot entities none at all. Intention phrases are extracted once per training text by the LLM
runtime's resumable job runner (prompt ``prompts/micro_intention.yaml``); an entity's phrases are
the union, in order, over its training texts. Answers that are not a JSON list fall back to the
quoted strings in the answer, else to clause splitting of the text itself; both are counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data.prepare import Prepared
from llmrec.errors import DataError

PROMPT = "micro_intention"
MAX_WORDS = 6


def training_pairs(data: Prepared, field: str = "explanation") -> pd.DataFrame:
    """(user, item, text, id) of the training explanation pairs; empty when the data has none."""
    expl = data.explanations
    if expl is None or field not in expl:
        return pd.DataFrame({"user": [], "item": [], "text": [], "id": []})
    train = expl.loc[expl["split"] == "train"]
    train = train.loc[train[field].astype(str).str.strip() != ""]
    return pd.DataFrame({"user": train["user"].to_numpy(np.int64), "item": train["item"].to_numpy(np.int64),
                         "text": train[field].astype(str).to_numpy(),
                         "id": [f"{u}:{i}" for u, i in zip(train["user"], train["item"])]})


def _clean(phrases: list[Any]) -> list[str]:
    out: list[str] = []
    for p in phrases:
        p = " ".join(str(p).strip().strip(".").lower().split())
        if p and len(p.split()) <= MAX_WORDS and p not in out:
            out.append(p)
    return out[:10]


def parse_phrases(raw: str, record: dict | None = None) -> list[str]:
    """A JSON list of strings (the stop string may have eaten the closing bracket)."""
    start = raw.find("[")
    if start < 0:
        raise ValueError("no JSON list in the answer")
    body = raw[start:].strip()
    if "]" not in body:
        body = body.rstrip(", \n") + "]"
    value = json.loads(body[: body.index("]") + 1])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    phrases = _clean(value)
    if not phrases:
        raise ValueError("no usable phrase")
    return phrases


def fallback_phrases(raw: str, text: str) -> list[str]:
    """Quoted strings of a malformed answer, else the text's short clauses."""
    quoted = _clean(re.findall(r'(?:\[|,)\s*"([^"\n]{2,60})"', raw))
    if quoted:
        return quoted
    clauses = re.split(r"[,;.:!?()]| and | with | for ", text)
    boiler = re.compile(r"^\s*(the user|you|this|it)\b", re.I)  # "the user would enjoy ..." is no intention
    return _clean([c for c in clauses if 1 <= len(c.split()) <= MAX_WORDS and not boiler.match(c)])


@dataclass
class ExtractionSummary:
    texts: int
    calls: int
    fallbacks: int
    resumed_from_batch: int
    seconds: float
    model: str
    prompt_hash: str


def extract_intentions(pairs: pd.DataFrame, llm: Any, output: str | Path, *, batch_size: int = 16,
                       max_new_tokens: int = 48, progress: bool = True) -> ExtractionSummary:
    """Run the intention prompt over every training text; resumable (see ``JobRunner``)."""
    from llmrec.llm.backend import GenerationParams
    from llmrec.llm.jobs import JobRunner
    from llmrec.llm.prompts import load_prompt

    tmpl = load_prompt(PROMPT)
    params = GenerationParams(max_new_tokens=max_new_tokens, stop=["]"])
    records = [{"id": rid, "text": text} for rid, text in zip(pairs["id"], pairs["text"])]
    runner = JobRunner(output, model=llm.name, prompt_hash=tmpl.hash, batch_size=batch_size,
                       repair_retries=0, progress=progress, desc="intentions")
    last_raw: dict[str, str] = {}

    def call(batch):
        texts = [g.text for g in llm.generate([tmpl.messages(text=r["text"]) for r in batch], params)]
        last_raw.update({r["id"]: t for r, t in zip(batch, texts)})
        return texts

    summary = runner.run(records, call, parse=parse_phrases,
                         fallback=lambda r: fallback_phrases(last_raw.get(r["id"], ""), r["text"]))
    return ExtractionSummary(texts=summary.records, calls=summary.calls, fallbacks=summary.fallbacks,
                             resumed_from_batch=summary.resumed_from_batch, seconds=summary.seconds,
                             model=llm.name, prompt_hash=tmpl.hash)


def entity_phrases(pairs: pd.DataFrame, results: list[dict]) -> dict[str, dict[int, dict]]:
    """{'user': {u: record}, 'item': {i: record}}; record = phrases, sources, raw outputs, status,
    model, prompt hash. Results for pairs that are not training pairs are ignored."""
    by_id = {r["id"]: r for r in results}
    out: dict[str, dict[int, dict]] = {"user": {}, "item": {}}
    for u, i, pid in zip(pairs["user"], pairs["item"], pairs["id"]):
        res = by_id.get(pid)
        if res is None or not res.get("parsed"):
            continue
        for side, key in (("user", int(u)), ("item", int(i))):
            rec = out[side].setdefault(key, {"phrases": [], "sources": [], "raw": [], "status": [],
                                             "model": res["model"], "prompt_hash": res["prompt_hash"]})
            rec["phrases"] = _clean(rec["phrases"] + list(res["parsed"]))
            rec["sources"].append(pid)
            rec["raw"].append(res["output"])
            rec["status"].append(res["status"])
    return out


def category_phrases(data: Prepared) -> dict[int, dict]:
    """Items' categories / genres as phrases (no LLM): MovieLens genres, Amazon categories."""
    if data.items is None or "categories" not in data.items:
        return {}
    out = {}
    for iid, cats in zip(data.items.index, data.items["categories"].astype(str)):
        phrases = _clean(re.split(r"[|,;]", cats))
        if phrases:
            out[int(iid)] = {"phrases": phrases, "sources": ["categories"], "raw": [cats], "status": ["rule"],
                             "model": None, "prompt_hash": None}
    return out


def read_job(path: str | Path) -> list[dict]:
    from llmrec.llm.jobs import read_results

    path = Path(path)
    if not path.exists():
        raise DataError("intention file does not exist (run `llmrec tokenizer extract` first)", path=str(path))
    return read_results(path)


@dataclass
class PhraseTable:
    """Phrase embeddings of the entities that have phrases (one side)."""
    ids: np.ndarray
    """(n,) entity ids."""
    emb: np.ndarray
    """(n, P, C) float32, zeros where absent."""
    present: np.ndarray
    """(n, P) bool."""
    phrases: list[list[str]]


def phrase_table(records: dict[int, dict], max_phrases: int, encoder: Any) -> PhraseTable:
    ids = np.array(sorted(records), dtype=np.int64)
    lists = [records[int(k)]["phrases"][:max_phrases] for k in ids]
    unique = sorted({p for ps in lists for p in ps})
    vectors = encoder.encode(unique) if unique else np.zeros((0, encoder.dim), np.float32)
    index = {p: j for j, p in enumerate(unique)}
    emb = np.zeros((len(ids), max_phrases, encoder.dim), np.float32)
    present = np.zeros((len(ids), max_phrases), bool)
    for r, ps in enumerate(lists):
        for s, p in enumerate(ps):
            emb[r, s] = vectors[index[p]]
            present[r, s] = True
    return PhraseTable(ids, emb, present, lists)
