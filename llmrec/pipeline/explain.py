"""The pipeline's explanation step: the serving backbone's top-k for sample users, each explained by
the trained stage-2 run, with its evidence, its permutation control and the faithfulness checks.

The permutation control gives each pair the evidence of another (user, item) that shares neither its
user nor its item (seeded) and keeps everything else. Evidence identification ranks each output
against its pair's own evidence and 19 distractor evidences (other users, other items; seeded), by
MiniLM cosine (chance 0.05 top-1). The control's output is ranked against the ORIGINAL pair's
evidence, so method minus control is the part of the text that comes from the pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import write_text
from llmrec.errors import ConfigError
from llmrec.pipeline.config import PipelineConfig, folder, serving_backbone

K = 19


def pick_users(cfg: PipelineConfig, known: list[str]) -> list[str]:
    """``explain.user_ids`` (checked), else a seeded sample of ``known`` (sorted first, so the sample
    does not depend on dictionary order)."""
    e = cfg.explain
    if e.user_ids:
        missing = [u for u in e.user_ids if u not in set(known)]
        if missing:
            raise ConfigError(f"explain.user_ids: unknown user ids {missing[:5]}")
        return list(e.user_ids)
    pool = sorted(known)
    rng = np.random.default_rng(e.seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), min(e.users, len(pool)), replace=False))]


def other_pairs(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) dense users and items, each row's pairs sharing neither the row's user nor its item
    (item ids 1..n_items; 0 is padding)."""
    rng = np.random.default_rng(seed)
    us = rng.integers(0, n_users - 1, size=(len(users), k))
    us = us + (us >= users[:, None])  # skip the pair's own user
    its = rng.integers(1, n_items, size=(len(items), k))
    its = its + (its >= items[:, None])  # skip the pair's own item
    return us, its


def explain_recommendations(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    from llmrec.alignment.explain import explain_rows, rows_for
    from llmrec.alignment.train import load_run
    from llmrec.eval import faithfulness as fm
    from llmrec.llm.encoder import SentenceEncoder
    from llmrec.serve.recommender import Recommender

    e, here = cfg.explain, folder(out, "explain")
    here.mkdir(parents=True, exist_ok=True)
    rec = Recommender.from_run(folder(out, serving_backbone(cfg)))
    s = load_run(folder(out, "align"), backend_kind=cfg.engines.llm)
    try:
        if s.aligner.evidence is None:
            raise ConfigError(f"align.model.variant {s.cfg.model.variant!r} gives no evidence; the pipeline explains "
                              "with an evidence variant (evidence or evidence_plain)")
        tok = s.tokenizer
        users = pick_users(cfg, [u for u in rec.user_index if u in tok.index["user"]])
        recs = {u: rec.recommend(u, e.top_k) for u in users}
        wanted = [(u, r["item_id"]) for u in users for r in recs[u]]
        rows = rows_for(s, wanted)
        # the pair table holds titles of its own pairs only; recommended items take the catalogue's
        catalogue_titles = s.aligner.evidence.titles
        rows["title"] = [catalogue_titles.get(int(i), t) for i, t in zip(rows["item"], rows["title"])]
        n_users, n_items = len(tok.index["user"]), len(tok.index["item"]) - 1
        uu, ii = rows["user"].to_numpy(), rows["item"].to_numpy()
        gen = explain_rows(s, rows, here / "explanations.job.jsonl", max_new_tokens=e.max_new_tokens,
                           batch_size=e.batch_size)
        evidence = [s.aligner.evidence(int(u), int(i)) for u, i in zip(uu, ii)]
        control = None
        donor_u, donor_i = (x[:, 0] for x in other_pairs(uu, ii, n_users, n_items, 1, e.seed + 1))
        if e.permutation:
            swapped = rows.assign(user=donor_u, item=donor_i)
            control = explain_rows(s, swapped, here / "permutation.job.jsonl", max_new_tokens=e.max_new_tokens,
                                   batch_size=e.batch_size)
    finally:
        close = getattr(s.backend, "close", None)
        if close is not None:
            close()
    # faithfulness: own evidence vs K distractor evidences
    du, di = other_pairs(uu, ii, n_users, n_items, K, e.seed + 2)
    own = [ev.text() for ev in evidence]
    others = [[s.aligner.evidence(int(u), int(i)).text() for u, i in zip(ur, ir)] for ur, ir in zip(du, di)]
    encoder = SentenceEncoder(s.cfg.eval.bert_model)
    template = s.aligner.template.instruction()
    catalogue = sorted(set(s.aligner.evidence.titles.values()))
    variant = s.cfg.model.variant
    methods = {variant: gen} if control is None else {variant: gen, "permutation control": control}
    per_pair: dict[str, dict[str, np.ndarray]] = {}
    found: dict[str, list[list[str]]] = {}
    for name, frame in methods.items():
        texts = frame["text"].tolist()
        ident = fm.identify_against(encoder, texts, own, others)
        # names the evidence shows anywhere (history titles, interest phrases that are titles) are allowed
        allowed = [ev.titles + ev.interests + ev.glosses for ev in evidence]
        hall, names = fm.hallucinated_titles(texts, catalogue, allowed, rows["title"].tolist())
        per_pair[name] = {"evidence_top1": ident["top1"], "evidence_rr": ident["rr"],
                          "echo": fm.echo(texts, template), "copies_evidence": fm.copies_evidence(texts, own),
                          "hallucinated_title": hall,
                          "names_evidence_title": fm.mentions(texts, [ev.titles for ev in evidence]),
                          "names_target_title": fm.mentions(texts, [[t] for t in rows["title"]])}
        found[name] = names
    records = []
    for n, (u, item) in enumerate(wanted):
        r = next(x for x in recs[u] if x["item_id"] == item)
        records.append({
            "user": u, "item": item, "rank": recs[u].index(r) + 1, "score": round(r["score"], 4),
            "title": rows["title"].iloc[n], "explanation": gen["text"].iloc[n], "evidence": evidence[n].as_dict(),
            "prompt_tokens": int(gen["prompt_tokens"].iloc[n]),
            "checks": {k: float(v[n]) for k, v in per_pair[variant].items()},
            "hallucinated": found[variant][n],
            **({"control": {"explanation": control["text"].iloc[n],
                            "donor": {"user": tok.vocab["user"][int(donor_u[n])],
                                      "item": tok.vocab["item"][int(donor_i[n])]},
                            "checks": {k: float(v[n]) for k, v in per_pair["permutation control"].items()}}}
               if control is not None else {})})
    write_text(here / "explanations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    from llmrec.eval.bootstrap import paired_bootstrap

    summary: dict[str, Any] = {"pairs": len(records), "users": users, "k_distractors": K, "method": variant,
                               "methods": {}}
    for name, arrays in per_pair.items():
        texts = methods[name]["text"].tolist()
        summary["methods"][name] = {**{k: float(v.mean()) for k, v in arrays.items()}, "usr": fm.usr(texts)}
    if control is not None:
        a, b = per_pair["permutation control"], per_pair[variant]
        summary["difference"] = {k: paired_bootstrap(a[k], b[k], n_resamples=e.bootstrap, seed=e.seed)
                                 for k in ("evidence_top1", "evidence_rr")}
    write_text(here / "summary.json", json.dumps(summary, indent=1))
    return summary
