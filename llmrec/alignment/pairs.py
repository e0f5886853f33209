"""(user, item, reference explanation) pairs for stage 2, split by the data layer.

With ``references: xrec`` the texts are the dataset's own explanations and their split is the data
layer's (train / valid / test / zero_shot; ``excluded`` pairs are dropped). Otherwise
``references`` is a JSONL of teacher-generated references (``llmrec align teacher``), each row
user, item (the dataset's raw ids), split and explanation. Training reads ``train`` rows only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.alignment.config import REST
from llmrec.data.io import LINE, read_jsonl
from llmrec.data.prepare import Prepared
from llmrec.errors import DataError

COLUMNS = ["id", "user", "item", "user_raw", "item_raw", "title", "user_summary", "item_summary",
           "reference", "split", "source"]


def load_pairs(data: Prepared, references: str = "xrec") -> pd.DataFrame:
    """The explanation pairs: the dataset's own texts (``xrec``), a teacher JSONL, or ``none`` (no
    pairs: for the variants with nothing to train, which only explain)."""
    if references == "none":
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("user", "item") else object) for c in COLUMNS})
    if references == "xrec":
        expl = data.explanations
        if expl is None:
            raise DataError(f"dataset {data.name!r} has no explanation texts; give a teacher reference file "
                            "(`llmrec align teacher`) as `references`")
        expl = expl.loc[expl["split"] != "excluded"]
        frame = pd.DataFrame({"user": expl["user"].to_numpy(np.int64), "item": expl["item"].to_numpy(np.int64),
                              "reference": expl["explanation"].astype(str).to_numpy(),
                              "split": expl["split"].to_numpy(),
                              "user_summary": expl.get("user_summary", "").astype(str).to_numpy()
                              if "user_summary" in expl else "",
                              "item_summary": expl.get("item_summary", "").astype(str).to_numpy()
                              if "item_summary" in expl else "",
                              "source": "dataset"})
        if "title" in expl:
            frame["title"] = expl["title"].astype(str).to_numpy()
    else:
        frame = _read_teacher(Path(references), data)
    if "title" not in frame or (frame["title"] == "").all():
        titles = data.items["title"] if data.items is not None else None
        frame["title"] = [str(titles.get(i, data.item_vocab[i])) if titles is not None else data.item_vocab[i]
                          for i in frame["item"]]
    frame["user_raw"] = [data.user_vocab[u] for u in frame["user"]]
    frame["item_raw"] = [data.item_vocab[i] for i in frame["item"]]
    frame["id"] = frame["user_raw"] + ":" + frame["item_raw"]
    if frame["id"].duplicated().any():
        frame = frame.drop_duplicates("id")  # a repeated (user, item) row would be scored twice
    return frame[COLUMNS].reset_index(drop=True)


def _read_teacher(path: Path, data: Prepared) -> pd.DataFrame:
    if not path.exists():
        raise DataError("reference file does not exist (run `llmrec align teacher`)", path=str(path))
    users = {u: i for i, u in enumerate(data.user_vocab)}
    items = {v: i for i, v in enumerate(data.item_vocab)}
    table = read_jsonl(path, required=["user", "item", "split", "explanation"])
    rows = []
    for r in table.to_dict("records"):
        u, i = users.get(str(r["user"])), items.get(str(r["item"]))
        if u is None or not i:
            raise DataError(f"unknown {'user' if u is None else 'item'} id "
                            f"{r['user'] if u is None else r['item']!r}", path=str(path), line=r[LINE])
        rows.append({"user": u, "item": i, "reference": str(r["explanation"]), "split": r["split"],
                     "user_summary": _text(r.get("user_profile")), "item_summary": _text(r.get("item_profile")),
                     "source": "teacher:" + str(r.get("model", "?"))})
    return pd.DataFrame(rows)


def _text(value) -> str:
    return value if isinstance(value, str) else ""  # absent in a row: NaN in the table


def sample(frame: pd.DataFrame, split: str, n: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of one split's pairs, in a fixed order (the same for every method);
    ``<split>_rest``: that split's pairs the sample of ``n`` leaves out (empty when ``n`` covers all)."""
    base = split.removesuffix(REST)
    part = frame.loc[frame["split"] == base]
    keep = np.ones(len(part), dtype=bool)
    if n is not None and len(part) > n:
        keep[:] = False
        keep[np.random.default_rng(seed).choice(len(part), n, replace=False)] = True
    return part.iloc[np.flatnonzero(~keep if split != base else keep)].reset_index(drop=True)


def tokens_of_other_pairs(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The permutation control: every pair keeps its id, title and reference but takes the user and
    item (so the behaviour tokens, the evidence or the text profile) of another pair of the same
    sample that shares NEITHER its user NOR its item. Each pair donates exactly once: a seeded random cyclic
    permutation (Sattolo's algorithm), then seeded swaps of donors until no pair's donor shares its
    user or item. A model whose explanations do not get worse under this swap does not use what
    its inputs say about the pair."""
    if len(rows) < 2:
        raise DataError(f"the permutation control needs at least 2 pairs, got {len(rows)}")
    users, items = rows["user"].to_numpy(), rows["item"].to_numpy()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    donor = np.empty(len(rows), dtype=np.int64)
    donor[order] = np.roll(order, -1)

    def ok(a: int, b: int) -> bool:
        return users[a] != users[b] and items[a] != items[b]

    for i in range(len(rows)):
        if ok(i, donor[i]):
            continue
        for j in rng.permutation(len(rows)):
            if j != i and ok(i, donor[j]) and ok(j, donor[i]):
                donor[i], donor[j] = donor[j], donor[i]
                break
        else:
            raise DataError(f"the permutation control found no donor for pair {rows['id'].iloc[i]!r} that "
                            "shares neither its user nor its item (the sample repeats one user or item "
                            "too often)")
    return with_inputs_of(rows, donor)


PAIR_INPUT_COLUMNS = ("user", "item", "user_summary", "item_summary", "evidence_text")
"""What a pair's inputs are read from; the id, title and reference stay with the pair."""


def with_inputs_of(rows: pd.DataFrame, donor: np.ndarray) -> pd.DataFrame:
    """``rows`` with each row's inputs (user, item, and what belongs to them: the text profile, any
    evidence given with the row) taken from row ``donor[i]``; id, title and reference kept."""
    out = rows.copy()
    for col in PAIR_INPUT_COLUMNS:
        if col in rows:
            out[col] = rows[col].to_numpy()[donor]
    return out
