"""LLM calls saved vs quality, over several AP preferences (``llmrec interests curve``).

One extraction job serves every point: it asks the LLM for the union of the representatives of all
preferences plus a seeded sample of reference users, for whom the one-call-per-user answer (their
own interests) is the paired baseline. For each preference the curve reports the clusters, the
calls-saved factor, and the coverage (see ``quality``) of propagated interests over all users,
and for the reference users the paired bootstrap difference inherited - own. A floor for
comparison: the K most frequent training categories given to every user.

With ``downstream`` (an ablation config, see ``llmrec.experiments.ablate``) each preference's propagated
interests are also written as an artifact and one backbone (IBIM by default) is trained with them
and once without; the curve then reports the test NDCG@20 and Recall@20 change with a paired
bootstrap over test users (one seed: a cheap screen, not the multi-seed ablation).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import save_figure, write_text
from llmrec.interests.config import InterestsConfig


def _summary(values: np.ndarray) -> dict[str, float]:
    v = values[~np.isnan(values)]
    return {"mean": float(v.mean()) if len(v) else float("nan"), "n": int(len(v))}


def run_curve(cfg: InterestsConfig, preferences: list[Any], *, n_reference: int = 100, seed: int = 0,
              results_dir: str | Path | None = None, progress: bool = True, generate: Any = None,
              llm: Any = None, downstream: dict | None = None) -> dict:
    """``downstream``: {"ablation": load_ablation(...), "backbone": "ibim", "seed": 0} or None."""
    from llmrec.data.prepare import prepare
    from llmrec.eval.bootstrap import paired_bootstrap
    from llmrec.interests.cluster import cluster_users
    from llmrec.interests.extract import run_extraction
    from llmrec.interests.job import embed_texts
    from llmrec.interests.propagate import propagate
    from llmrec.interests.quality import coverage, item_texts, personal_auc
    from llmrec.interests.texts import heldout_items, item_fields, train_items, user_texts
    from llmrec.llm.encoder import SentenceEncoder
    from llmrec.llm.jobs import read_results

    out = Path(cfg.out_dir)
    res_dir = Path(results_dir) if results_dir else out / "curve"
    out.mkdir(parents=True, exist_ok=True)
    data = prepare(cfg.data)
    texts = user_texts(data, cfg.texts)
    emb = embed_texts(texts.texts, cfg.texts.encoder, out, separator=cfg.texts.separator, progress=progress)
    points = []
    for p in preferences:
        cl = cluster_users(emb, dataclasses.replace(cfg.cluster, preference=p))
        points.append((p, cl))
    rng = np.random.default_rng(seed)
    reference = np.sort(rng.choice(len(texts.users), min(n_reference, len(texts.users)), replace=False))
    rows = sorted(set(reference.tolist()) | {int(e) for _, cl in points for e in cl.exemplars})
    records = [{"id": data.user_vocab[int(texts.users[r])], "history": texts.texts[r]} for r in rows]
    job = out / "curve_job.jsonl"
    summary = run_extraction(records, cfg.extract, str(job), generate=generate, llm=llm, progress=progress)
    results = {r["id"]: r for r in read_results(job)}

    encoder = SentenceEncoder(cfg.texts.encoder)
    item_emb = encoder.encode(item_texts(data), progress=progress)
    users = texts.users
    train = [train_items(data, int(u)) for u in users]
    held = [heldout_items(data, int(u)) for u in users]
    k = cfg.extract.k

    seen = [np.concatenate([a, b]) for a, b in zip(train, held)]

    def scores(interest_emb, weights):
        return (coverage(interest_emb, weights, item_emb, train), coverage(interest_emb, weights, item_emb, held),
                personal_auc(interest_emb, weights, item_emb, held, seen))

    # one call per user, for the reference sample: each reference user is its own representative
    own = propagate(data.user_vocab, users[reference], _self_clustering(len(reference)), results, k=k, encoder=encoder)
    own_emb, own_w = own.embeddings[users[reference]], own.weights[users[reference]]
    # own interests scored against the same negative pool as everyone else's
    full_emb, full_w = np.zeros((len(users),) + own_emb.shape[1:], np.float32), np.zeros((len(users), k), np.float32)
    full_emb[reference], full_w[reference] = own_emb, own_w
    tr, he, au = scores(full_emb, full_w)
    own_train, own_held, own_auc = tuple(x[reference] for x in tr), tuple(x[reference] for x in he), au[reference]
    cat_of = [[c.strip().lower() for c in x.split(",") if c.strip()] for x in item_fields(data)[1]]
    cats = Counter(c for items in train for i in items for c in cat_of[int(i)])
    floor_phrases = [c for c, _ in cats.most_common(k)]
    floor_emb = np.broadcast_to(encoder.encode(floor_phrases), (len(users), len(floor_phrases), item_emb.shape[1]))
    floor_tr, floor_he, floor_auc = scores(floor_emb, np.ones((len(users), len(floor_phrases))))
    table = [{"preference": "one call per user (reference sample)", "clusters": len(reference),
              "calls_saved_factor": 1.0, "train_soft": _summary(own_train[0]), "heldout_soft": _summary(own_held[0]),
              "heldout_hit": _summary(own_held[1]), "personal_auc": _summary(own_auc)},
             {"preference": f"floor: top-{k} training categories for all", "clusters": 0, "calls_saved_factor": None,
              "train_soft": _summary(floor_tr[0]), "heldout_soft": _summary(floor_he[0]),
              "heldout_hit": _summary(floor_he[1]), "personal_auc": _summary(floor_auc)}]
    for p, cl in points:
        prop = propagate(data.user_vocab, users, cl, results, k=k, encoder=encoder)
        (tr_soft, _), (he_soft, he_hit), auc = scores(prop.embeddings[users], prop.weights[users])
        paired = paired_bootstrap(own_auc, auc[reference], seed=seed)
        if downstream is not None:
            from llmrec.interests.job import save_artifact

            save_artifact(out / "curve_downstream" / "artifacts" / _slug(p), prop,
                          {"format": "llmrec-esim-1", "llm": cfg.extract.llm, "preference": p,
                           "clustering": {"n_clusters": cl.n_clusters, "preference": cl.preference}})
        table.append({"preference": p, "preference_value": cl.preference, "clusters": cl.n_clusters,
                      "calls_saved_factor": round(len(users) / cl.n_clusters, 2), "ap_converged": cl.converged,
                      "train_soft": _summary(tr_soft), "heldout_soft": _summary(he_soft),
                      "heldout_hit": _summary(he_hit), "personal_auc": _summary(auc),
                      "reference_auc_inherited_minus_own": paired})
    if downstream is not None:
        _downstream(table, downstream, out / "curve_downstream", seed=seed)
    result = {"dataset": data.name, "users": int(len(users)), "llm": cfg.extract.llm, "backend": cfg.extract.backend,
              "k": k, "tau": 0.5, "reference_users": int(len(reference)), "seed": seed,
              "llm_calls": summary.calls, "fallbacks": summary.fallbacks, "encoder": cfg.texts.encoder,
              "points": table}
    result["markdown"] = markdown(result)
    res_dir.mkdir(parents=True, exist_ok=True)
    write_text(res_dir / "curve.json", json.dumps({k_: v for k_, v in result.items() if k_ != "markdown"},
                                                  indent=1, default=str))
    write_text(res_dir / "curve.md", result["markdown"])
    plot(result, res_dir / "curve.png")
    return result


def _slug(preference: Any) -> str:
    return "pref-" + str(preference).replace("/", "_")


def _downstream(table: list[dict], spec: dict, work: Path, *, seed: int) -> None:
    """Train ``spec['backbone']`` without and with each point's interests; add the gains to ``table``.
    Artifacts and runs live under the job's folder (``work``), not beside the results tables."""
    from llmrec.eval.bootstrap import paired_bootstrap
    from llmrec.experiments.ablate import read_run, run_config
    from llmrec.train.run import run

    ab, backbone = spec["ablation"], spec.get("backbone", "ibim")
    if backbone not in ab["backbones"]:
        ab = {**ab, "backbones": {**ab["backbones"], backbone: {}}}

    def train(variant: str, folder: Path, interests: str | None) -> dict:
        cfg = run_config(ab, backbone, variant, spec.get("seed", seed), folder)
        cfg.semantic.interests = interests
        if not (Path(cfg.train.out_dir) / "results.json").exists():
            run(cfg)
        return read_run(Path(cfg.train.out_dir))

    plain = train("plain", work / "plain", None)
    for point in table:
        if "preference_value" not in point:
            continue
        name = _slug(point["preference"])
        with_sem = train("esim", work / name, str(work / "artifacts" / name))
        gains = {f"{m}_gain": paired_bootstrap(plain["per_user"][m], with_sem["per_user"][m], seed=seed)
                 for m in ("ndcg@20", "recall@20")}
        point["downstream"] = {"backbone": backbone, "seed": spec.get("seed", seed),
                               "plain_ndcg@20": plain["test"]["ndcg@20"], "esim_ndcg@20": with_sem["test"]["ndcg@20"],
                               **gains}


def _self_clustering(n: int):
    from llmrec.interests.cluster import Clustering

    idx = np.arange(n)
    return Clustering(labels=idx, exemplars=idx, similarity=np.ones(n, np.float32), method="self", preference=0.0,
                      n_iter=0, converged=True, seconds=0.0)


def _fmt(x: dict) -> str:
    return "n/a" if x["n"] == 0 else f"{x['mean']:.4f}"


def _short(name: str) -> str:
    """A local model folder by its last part(s), for tables (the JSON keeps the full path)."""
    p = Path(name)
    return name if not p.is_absolute() else (p.parent.name if p.name == "model" else p.name)


def markdown(result: dict) -> str:
    lines = [f"ESIM on {result['dataset']} ({result['users']} users with a text): LLM calls saved vs quality. "
             f"LLM {_short(result['llm'])} ({result['backend']}), K={result['k']}, "
             f"encoder {_short(result['encoder'])}, "
             f"{result['reference_users']} reference users (seed {result['seed']}) asked individually.", "",
             "| preference | clusters = LLM calls | calls saved | train soft cov. | held-out soft cov. | "
             f"held-out cov.@{result['tau']} | personal AUC | reference users: AUC inherited - own (95% CI) |",
             "|---|---|---|---|---|---|---|---|"]
    down = next((p["downstream"] for p in result["points"] if "downstream" in p), None)
    if down:
        lines[2] = lines[2] + f" {down['backbone']} test NDCG@20 with these interests - without (95% CI) |"
        lines[3] = lines[3] + "---|"
    for p in result["points"]:
        ci = p.get("reference_auc_inherited_minus_own")
        ci_txt = f"{ci['mean_diff']:+.4f} [{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}]" if ci else ""
        saved = f"{p['calls_saved_factor']:.1f}x" if p["calls_saved_factor"] else "-"
        name = p["preference"] if "preference_value" not in p else f"{p['preference']} ({p['preference_value']:.3f})"
        row = (f"| {name} | {p['clusters']} | {saved} | {_fmt(p['train_soft'])} | {_fmt(p['heldout_soft'])} | "
               f"{_fmt(p['heldout_hit'])} | {_fmt(p['personal_auc'])} | {ci_txt} |")
        if down:
            g = p.get("downstream", {}).get("ndcg@20_gain")
            row += f" {g['mean_diff']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] |" if g else " |"
        lines.append(row)
    if down:
        lines += ["", f"Downstream: {down['backbone']} trained once without semantic signals (test NDCG@20 "
                  f"{down['plain_ndcg@20']:.4f}) and once with each preference's interests, seed {down['seed']}; "
                  "paired bootstrap over test users."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in result["points"] if "preference_value" in p]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["calls_saved_factor"] for p in pts], [p["personal_auc"]["mean"] for p in pts], "o-",
            label="propagated (all users)")
    for p in pts:
        ax.annotate(str(p["clusters"]), (p["calls_saved_factor"], p["personal_auc"]["mean"]), fontsize=8)
    own, floor = result["points"][0], result["points"][1]
    ax.axhline(own["personal_auc"]["mean"], ls="--", c="g", label="one call per user (reference sample)")
    ax.axhline(floor["personal_auc"]["mean"], ls=":", c="r", label="floor: top categories for all")
    ax.set_xscale("log")
    ax.set_xlabel("LLM calls saved (users / clusters)")
    ax.set_ylabel("personal AUC (own vs others' held-out items)")
    ax.set_title(f"ESIM on {result['dataset']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
