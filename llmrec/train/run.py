"""Train-and-evaluate entry point: setup -> train -> save -> cleanup.

Used by ``llmrec train``, ``llmrec demo`` and the benchmark. Writes into ``train.out_dir``:
``best.safetensors``/``last.safetensors`` checkpoints, ``metrics.jsonl`` (one line per epoch), ``results.json`` and
``results.md`` (test metrics table).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from llmrec.atomic import save_npz, write_text
from llmrec.config import RunConfig, to_dict
from llmrec.data.prepare import TEST, VALID, Prepared, prepare, train_counts
from llmrec.data.sequences import EvalExamples, TrainWindows


def metrics_table(metrics: dict[str, float], ks: list[int], *, title: str = "") -> str:
    names = [("HR", "hr"), ("Recall", "recall"), ("NDCG", "ndcg"), ("MRR", "mrr")]
    head = "| metric | " + " | ".join(f"@{k}" for k in ks) + " |"
    rows = [head, "|---|" + "---|" * len(ks)]
    for label, key in names:
        rows.append(f"| {label} | " + " | ".join(f"{metrics[f'{key}@{k}']:.4f}" for k in ks) + " |")
    return (f"{title}\n\n" if title else "") + "\n".join(rows)


def setup(cfg: RunConfig, data: Prepared | None = None):
    """Prepare data, batches and the model for ``cfg``."""
    from llmrec.backbones.registry import build_backbone, get_backbone

    data = data or prepare(cfg.data)
    model_cls = get_backbone(cfg.backbone["name"])
    if model_cls.batch_format != "sequence":
        raise NotImplementedError(f"batch format {model_cls.batch_format!r} is not built yet")
    missing = [f for f in model_cls.requires
               if (f == "scenes" and len(data.scene_vocab) <= 1)
               or (f == "behaviors" and len(data.behavior_vocab) <= 1)]
    if missing:
        from llmrec.errors import ConfigError

        raise ConfigError(f"backbone {cfg.backbone['name']!r} needs {missing} but {data.name} has "
                          "none (enable data.derive_behaviors / data.derive_scenes or use a source with them)")
    train = TrainWindows.build(data, cfg.data.max_len, cfg.data.window_stride)
    valid = EvalExamples.build(data, VALID, cfg.data.max_len)
    test = EvalExamples.build(data, TEST, cfg.data.max_len)
    model = build_backbone(cfg.backbone, n_items=data.n_items, n_users=data.n_users,
                           max_len=cfg.data.max_len, n_behaviors=len(data.behavior_vocab),
                           n_scenes=len(data.scene_vocab))
    if hasattr(model, "fit_data"):
        model.fit_data(data)  # training-split statistics (e.g. MCLMR's popularity strata)
    from llmrec.backbones.sampling import fit_samplers

    fit_samplers(model, train_counts(data))  # a popularity proposal of the sampled softmax
    return data, train, valid, test, model


def build_adapter(cfg: RunConfig, data: Prepared, model) -> tuple[Any, dict[str, Any] | None]:
    """The semantic adapter of ``cfg.semantic`` around ``model`` (None when off) and a summary of
    the artifact it read (stored in checkpoints and results)."""
    sem = cfg.semantic
    if sem.interests is None:
        return None, None
    import torch

    from llmrec.backbones.plugins.semantic import SemanticAdapter
    from llmrec.backbones.plugins.semantic_table import load_semantic_table

    table = load_semantic_table(sem.interests, data.user_vocab)
    adapter = SemanticAdapter(model, torch.from_numpy(table.embeddings), torch.from_numpy(table.weights),
                              torch.from_numpy(table.cluster), dim=model.item_embeddings().size(-1),
                              align_weight=sem.align_weight, predict_weight=sem.predict_weight,
                              temperature=sem.temperature)
    summary = {"interests": table.path, "users_covered": table.covered, "users": data.n_users,
               "llm": table.manifest.get("llm"), "prompt_hash": table.manifest.get("prompt_hash"),
               "clusters": table.manifest.get("clustering", {}).get("n_clusters"),
               "align_weight": sem.align_weight, "predict_weight": sem.predict_weight}
    return adapter, summary


def run(cfg: RunConfig, data: Prepared | None = None) -> dict[str, Any]:
    from llmrec.backbones.registry import backbone_config
    from llmrec.train.seed import seed_everything
    from llmrec.train.trainer import Trainer

    backbone_config(cfg.backbone)  # a typo in the model's keys stops the run before any data is read
    seed_everything(cfg.train.seed)  # model initialisation is seeded too
    t0 = time.perf_counter()
    data, train, valid, test, model = setup(cfg, data)
    prep_seconds = time.perf_counter() - t0
    popularity = train_counts(data).astype(float)
    extra = {"run_config": to_dict(cfg), "user_vocab": data.user_vocab, "item_vocab": data.item_vocab,
             "data_meta": {"name": data.name, **data.meta}}
    adapter, semantic = build_adapter(cfg, data, model)
    if semantic is not None:
        extra["semantic"] = semantic
    trainer = Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items, extra=extra,
                      popularity=popularity, adapter=adapter)
    summary = trainer.fit(train, valid)
    trainer.load_best()
    head = {"dataset": data.name, "backbone": cfg.backbone["name"],
            "plugins": sorted(cfg.backbone.get("plugins") or {})}
    if not cfg.eval.test:
        return _valid_only(cfg, head, summary)
    result = trainer.evaluate(test)
    from llmrec.eval.scene import next_scene_accuracy

    scene = next_scene_accuracy(model, test, batch_size=cfg.eval.batch_size, device=trainer.device)
    from llmrec.eval.popularity import by_popularity, popularity_groups

    groups, user_group = None, {}
    if cfg.eval.mode == "full" and len(test):
        first_target = test.targets[1][test.targets[0][:-1]]
        groups = by_popularity(result.per_user, first_target, popularity)
        user_group = {"popularity_group": popularity_groups(popularity)[first_target]}  # per test user
    label = "sampled" if cfg.eval.mode == "sampled" else "full ranking"
    out = {
        **head,
        "protocol": f"{data.meta['split_protocol']}; {label}, history masked",
        "derived": data.meta.get("derived", []), "caveats": data.meta.get("caveats", []),
        "users": data.n_users, "items": data.n_items, "train_windows": len(train),
        "parameters": sum(p.numel() for p in model.parameters()),
        "semantic": semantic,
        **summary, "prepare_seconds": prep_seconds, "test_eval_seconds": result.seconds,
        "test": result.metrics, "config": to_dict(cfg),
        "next_scene": {k: scene[k] for k in ("n", "accuracy", "repeat_last", "majority")} if scene else None,
        "by_popularity": groups,
    }
    if trainer.dist.is_main:
        outdir = Path(cfg.train.out_dir)
        outdir.mkdir(parents=True, exist_ok=True)
        write_text(outdir / "results.json", json.dumps(out, indent=1))
        save_npz(outdir / "test_per_user.npz", users=result.users, **result.per_user, **user_group)
        if scene:
            save_npz(outdir / "test_next_scene.npz", users=scene["users"], **scene["hits"])
        shown = " + ".join([cfg.backbone["name"], *sorted(cfg.backbone.get("plugins") or {})])
        title = (f"### {shown} on {data.name} — test, {label} "
                 f"(best epoch {summary['best_epoch']}, stopped by {summary['stopped_by']})")
        if out["derived"]:
            title += "\n\nDerived signals: " + "; ".join(out["derived"])
        if out["caveats"]:
            title += "\n\nCaveats: " + "; ".join(out["caveats"])
        if semantic is not None:
            title += (f"\n\nSemantic signals: {semantic['interests']} ({semantic['users_covered']}/"
                      f"{semantic['users']} users), align {semantic['align_weight']}, "
                      f"predict {semantic['predict_weight']}")
        table = metrics_table(result.metrics, cfg.eval.ks, title=title) + "\n"
        if groups:
            k = cfg.eval.ks[0]
            table += (f"\nBy popularity of the held-out item (thirds of the training interactions), "
                      f"ndcg@{k} / share of top-{k} slots on the 10% most popular items: "
                      + "; ".join(f"{g} ({v['users']} users) {v[f'ndcg@{k}']:.4f} / {v[f'pop10_share@{k}']:.3f}"
                                  for g, v in groups.items() if v["users"]) + "\n")
        if scene:
            table += (f"\nNext-scene accuracy ({scene['n']} test users): {scene['accuracy']:.4f}; repeat the last "
                      f"scene {scene['repeat_last']:.4f}; majority scene {scene['majority']:.4f}\n")
        write_text(outdir / "results.md", table)
    out["per_user"] = result.per_user
    out["test_users"] = result.users
    return out


def _valid_only(cfg: RunConfig, head: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """results.json of a selection run (eval.test=false): the validation summary, no test figure."""
    out = {**head, "test": None, "test_skipped": "eval.test=false (a selection run on valid)", **summary,
           "config": to_dict(cfg)}
    outdir = Path(cfg.train.out_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    write_text(outdir / "results.json", json.dumps(out, indent=1))
    best = {k: v for k, v in summary.items() if k.startswith("best_valid_")}
    write_text(outdir / "results.md", f"### {head['backbone']} on {head['dataset']}: validation only "
               f"(eval.test=false; no test metric computed)\n\n" + json.dumps(best) + "\n")
    return out
