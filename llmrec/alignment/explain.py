"""Explanations from a stage-2 model: batched, resumable (the LLM runtime's job runner), timed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llmrec.alignment.train import Stage2
from llmrec.errors import DataError
from llmrec.llm.backend import GenerationParams
from llmrec.llm.jobs import JobRunner, read_results


def segment_tokens(s: Stage2, row: Any, n_soft: int) -> int:
    """Tokens of the user/item record segment (what BEAT's behaviour tokens replace)."""
    if "user_profile" in s.aligner.template.placeholders:
        return len(s.backend.target_ids(row.user_summary)) + len(s.backend.target_ids(row.item_summary))
    if s.aligner.evidence is not None:
        return n_soft + len(s.backend.target_ids(s.aligner.evidence(int(row.user), int(row.item)).text()))
    return n_soft


def explain_rows(s: Stage2, rows: pd.DataFrame, output: str | Path, *, max_new_tokens: int = 64,
                 batch_size: int = 16, progress: bool = True) -> pd.DataFrame:
    """Generate for every row (id, user, item, title, summaries) into ``output`` (JSONL, resumable);
    returns id, text, ms (per explanation, batch time / batch size), prompt_tokens, segment_tokens."""
    if rows["id"].duplicated().any():
        raise DataError(f"duplicate pair id {rows.loc[rows['id'].duplicated(), 'id'].iloc[0]!r}")
    by_id = rows.set_index("id", drop=False)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    side: dict[str, dict] = {}

    def call(batch: list[dict]) -> list[str]:
        part = by_id.loc[[r["id"] for r in batch]]
        t0 = time.perf_counter()
        with torch.no_grad(), s.aligner.autocast():
            reqs, soft = s.aligner.requests(part)
            gens = s.backend.generate(reqs, params)
        ms = (time.perf_counter() - t0) * 1000 / len(batch)
        n_soft = 0 if soft is None else soft.size(1)
        for req, row in zip(reqs, part.itertuples(index=False)):
            ids, _ = s.backend.assembler.token_ids(req)
            side[row.id] = {"ms": round(ms, 1), "prompt_tokens": len(ids),
                            "segment_tokens": segment_tokens(s, row, n_soft)}
            if s.aligner.evidence is not None:  # what the explanation was given, shown with it
                side[row.id]["evidence"] = s.aligner.evidence(int(row.user), int(row.item)).as_dict()
        return [g.text for g in gens]

    def parse(raw: str, record: dict) -> dict:
        return {"text": " ".join(raw.split()), **side.pop(record["id"])}

    runner = JobRunner(output, model=s.cfg.model.llm, prompt_hash=s.aligner.template.hash, batch_size=batch_size,
                       progress=progress, desc=f"explain {s.cfg.model.variant}")
    records = [{"id": i} for i in rows["id"]]
    runner.run(records, call, parse=parse)
    done = {r["id"]: r["parsed"] for r in read_results(output)}
    return pd.DataFrame([{"id": i, **done[i]} for i in rows["id"]])


def rows_for(s: Stage2, wanted: list[tuple], *, source: str = "argument") -> pd.DataFrame:
    """Rows for raw (user, item[, file line]) ids: dense ids from the stage-1 vocabulary, the
    item's title, and (for the profile prompt) any summary the pair table holds for that user and
    that item. Errors name ``source`` and the line."""
    return rows_from(s.tokenizer, s.pairs, wanted, source=source)


def rows_from(tok: Any, pairs: pd.DataFrame, wanted: list[tuple], *, source: str = "argument") -> pd.DataFrame:
    """:func:`rows_for` from the stage-1 run and the pair table alone (no LLM needed)."""
    titles = dict(zip(pairs["item_raw"], pairs["title"]))
    user_sum = dict(zip(pairs["user_raw"], pairs["user_summary"]))
    item_sum = dict(zip(pairs["item_raw"], pairs["item_summary"]))
    out = []
    for n, (u, i, *line) in enumerate(wanted, 1):
        where = f"{source} line {line[0] if line else n}" if source != "argument" else "the arguments"
        for side, raw in (("user", u), ("item", i)):
            if tok is not None and str(raw) not in tok.index[side]:
                raise DataError(f"unknown {side} id {raw!r} in {where} (not in {tok.dir})")
        out.append({"id": f"{u}:{i}", "user": tok.dense_id("user", str(u)) if tok is not None else 0,
                    "item": tok.dense_id("item", str(i)) if tok is not None else 0,
                    "title": titles.get(str(i), str(i)), "user_summary": user_sum.get(str(u), ""),
                    "item_summary": item_sum.get(str(i), ""), "reference": ""})
    return pd.DataFrame(out)


def read_pairs_file(path: str | Path) -> list[tuple[str, str, int]]:
    """(user, item, file line) from JSONL (``user`` and ``item`` per line) or CSV/TSV with a
    user,item header."""
    from llmrec.data.io import LINE, read_delimited, read_jsonl

    path = Path(path)
    if path.suffix == ".jsonl":
        frame = read_jsonl(path, required=["user", "item"])
    else:
        frame = read_delimited(path, sep="\t" if path.suffix == ".tsv" else ",", required=["user", "item"])
    return [(str(u), str(i), int(n)) for u, i, n in zip(frame["user"], frame["item"], frame[LINE])]
