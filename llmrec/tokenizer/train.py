"""Stage-1 entry point: setup -> train -> save, used by ``llmrec tokenizer train`` and benchmarks.

Writes into ``train.out_dir``: ``best.safetensors`` / ``last.safetensors`` (weights, optimiser, RNG, counters, run
config), ``metrics.jsonl`` (per epoch: losses, codebook usage and perplexity, validation metrics,
seconds), ``tokens.npz`` (per-entity code ids, codewords of the four codebooks, edge split),
``vocab.json``, ``intentions.jsonl`` (per entity: phrases, source pairs, raw LLM output, status,
model, prompt hash), ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.atomic import save_npz, write_text
from llmrec.config import to_dict
from llmrec.data.prepare import Prepared, prepare
from llmrec.tokenizer.config import TokenizerRunConfig
from llmrec.tokenizer.edges import EdgeSplit, edge_keys, rank_edges, split_edges
from llmrec.tokenizer.graph import normalized_adjacency
from llmrec.tokenizer.model import SIDES, BehaviorTokenizer
from llmrec.tokenizer.semantic import random_mask
from llmrec.tokenizer.vq import codes_stats
from llmrec.train.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from llmrec.train.seed import rng_state, seed_everything, set_rng_state
from llmrec.progress import progress_bar
from llmrec.train.loop import EarlyStopping, MetricsLog, epoch_summary, stop_reason

KS = [10, 20]


@dataclass
class Semantics:
    macro_users: torch.Tensor | None = None
    """(T,) users of the training text pairs used by the macro term."""
    macro_items: torch.Tensor | None = None
    macro_text: torch.Tensor | None = None
    """(T, C) sentence embeddings of those pairs' texts."""
    micro: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    """side -> ids (n,), phrases (n, P, C), present (n, P)."""
    records: dict[str, dict[int, dict]] = field(default_factory=dict)
    """side -> entity -> phrases and provenance."""
    coverage: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None


def build_semantics(cfg: TokenizerRunConfig, data: Prepared, split: EdgeSplit, encoder=None) -> Semantics:
    """Text supervision from training pairs whose edge is in the training graph (no held-out
    edge, valid/test/zero-shot pair or cold-start user ever contributes text)."""
    from llmrec.tokenizer.texts import category_phrases, entity_phrases, phrase_table, read_job, training_pairs

    sem, scfg = Semantics(), cfg.semantic
    pairs = training_pairs(data, scfg.pair_text)
    if len(pairs):
        keep = np.isin(edge_keys(pairs[["user", "item"]].to_numpy(), data.n_items),
                       edge_keys(split.train, data.n_items))
        pairs = pairs.loc[keep].reset_index(drop=True)
    if scfg.intentions:
        sem.records = entity_phrases(pairs, read_job(scfg.intentions))
    elif scfg.item_text_phrases:
        sem.records = {"user": {}, "item": category_phrases(data)}
    sem.records.setdefault("user", {})
    sem.records.setdefault("item", {})
    use_macro = scfg.macro and cfg.model.use_macro and len(pairs) > 0
    use_micro = scfg.micro and any(sem.records.values())
    if (use_macro or use_micro) and encoder is None:
        from llmrec.llm.encoder import SentenceEncoder

        encoder = SentenceEncoder(scfg.encoder)
    sem.encoder = encoder
    if use_macro:
        sem.macro_users = torch.tensor(pairs["user"].to_numpy())
        sem.macro_items = torch.tensor(pairs["item"].to_numpy())
        sem.macro_text = torch.as_tensor(encoder.encode(pairs["text"].tolist()))
    if use_micro:
        for side in SIDES:
            if sem.records[side]:
                table = phrase_table(sem.records[side], scfg.max_phrases, encoder)
                sem.micro[side] = {"ids": torch.as_tensor(table.ids), "phrases": torch.as_tensor(table.emb),
                                   "present": torch.as_tensor(table.present)}
    sem.coverage = {
        "training_text_pairs": int(len(pairs)),
        "users_with_pair_text": int(pairs["user"].nunique()) if len(pairs) else 0,
        "items_with_pair_text": int(pairs["item"].nunique()) if len(pairs) else 0,
        "users_with_phrases": len(sem.records["user"]), "items_with_phrases": len(sem.records["item"]),
        "users": data.n_users, "items": data.n_items,
        "macro_term": bool(use_macro), "micro_term": bool(use_micro),
    }
    return sem


@dataclass
class Stage1:
    cfg: TokenizerRunConfig
    data: Prepared
    split: EdgeSplit
    adj: torch.Tensor
    model: BehaviorTokenizer
    sem: Semantics
    device: torch.device


def setup(cfg: TokenizerRunConfig, data: Prepared | None = None, encoder=None) -> Stage1:
    seed_everything(cfg.train.seed)
    data = data or prepare(cfg.data)
    t = cfg.train
    split = split_edges(data.user, data.item, data.n_users, valid_ratio=t.valid_ratio, test_ratio=t.test_ratio,
                        holdout_users=t.holdout_users, seed=t.seed)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if t.device == "auto" else t.device)
    adj = normalized_adjacency(split.train[:, 0], split.train[:, 1], data.n_users, data.n_items).to(device)
    model = BehaviorTokenizer(cfg.model, n_users=data.n_users, n_items=data.n_items).to(device)
    plain = cfg.model.plain_lightgcn
    sem = Semantics(coverage={"macro_term": False, "micro_term": False}) if plain else \
        build_semantics(cfg, data, split, encoder)
    return Stage1(cfg, data, split, adj, model, sem, device)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate(stage: Stage1, which: str = "valid") -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    s = stage.split
    targets, known = (s.valid, [s.train]) if which == "valid" else (s.test, [s.train, s.valid])
    stage.model.eval()
    enc = stage.model.encode_all(stage.adj)
    out = rank_edges(lambda u: stage.model.score(enc, u), targets, known, stage.data.n_items, ks=KS,
                     device=stage.device)
    stage.model.train()
    return out


def _batch(stage: Stage1, edges: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    cfg, sem, dev = stage.cfg, stage.sem, stage.device
    batch = {"users": edges[:, 0], "pos": edges[:, 1],
             "neg": torch.randint(1, stage.data.n_items + 1, (len(edges), cfg.model.n_negatives), generator=gen)}
    n_text = cfg.train.text_batch_size
    if sem.macro_text is not None:
        pick = torch.randperm(len(sem.macro_text), generator=gen)[:n_text]
        batch |= {"macro_users": sem.macro_users[pick], "macro_items": sem.macro_items[pick],
                  "macro_text": sem.macro_text[pick]}
    for side, table in sem.micro.items():
        pick = torch.randperm(len(table["ids"]), generator=gen)[:n_text]
        present = table["present"][pick]
        batch |= {f"micro_{side}_ids": table["ids"][pick], f"micro_{side}_phrases": table["phrases"][pick],
                  f"micro_{side}_present": present,
                  f"micro_{side}_mask": random_mask(present, cfg.semantic.mask_ratio, gen)}
    return {k: v.to(dev) for k, v in batch.items()}


@torch.no_grad()
def _inputs(stage: Stage1) -> dict[str, torch.Tensor]:
    """What each quantiser currently receives, for codebook init and re-seeding."""
    users, items = stage.model.propagate(stage.adj)
    out = {}
    for name in stage.model.vq:
        z = users if name.startswith("user") else items[1:]
        out[name] = z.reshape(-1, stage.cfg.model.chunk_dim) if name.endswith("micro") else z
    return out


def fit(stage: Stage1) -> dict[str, Any]:
    cfg, model, t = stage.cfg, stage.model, stage.cfg.train
    out = Path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    gen = torch.Generator().manual_seed(t.seed)
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad": 0, "elapsed": 0.0, "epoch_seconds": []}
    early = EarlyStopping(t.patience, best=-1.0, best_epoch=0)
    log = MetricsLog(out / "metrics.jsonl")
    last = out / "last.safetensors"
    if t.resume and checkpoint_exists(last):
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        early.best, early.best_epoch, early.bad = state["best"], state["best_epoch"], state["bad"]
        gen.set_state(ckpt["generator"])
        set_rng_state(ckpt["rng"])
    elif cfg.model.quantize and not cfg.model.plain_lightgcn:
        for name, e in _inputs(stage).items():  # data-dependent codebook init
            model.vq[name].init_from(e, gen)
    log.trim("epoch", state["epoch"])  # nothing past the checkpoint (all of it on a fresh start)
    edges = torch.as_tensor(stage.split.train)
    stopped_by = "epochs"
    start = time.perf_counter() - state["elapsed"]
    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        t_epoch = time.perf_counter()
        order = torch.randperm(len(edges), generator=gen)
        sums: dict[str, float] = {}
        steps = range(0, len(edges), t.batch_size)
        for s in progress_bar(steps, desc=f"epoch {epoch}", enabled=t.progress, leave=False):
            batch = _batch(stage, edges[order[s:s + t.batch_size]].to(stage.device), gen)
            terms = model.loss(stage.adj, batch, alpha=cfg.semantic.alpha, beta=cfg.semantic.beta,
                               temperature=cfg.semantic.temperature)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        line: dict[str, Any] = {"epoch": epoch, **{k: v / len(steps) for k, v in sums.items()}}
        for name, vq in model.vq.items():
            if vq.quantize:
                line[f"{name}_usage"], line[f"{name}_perplexity"] = vq.usage_stats().values()
        if cfg.model.reseed_dead_codes and cfg.model.quantize and len(model.vq):
            proj = _inputs(stage)
            line["reseeded"] = sum(vq.reseed(proj[name], gen) for name, vq in model.vq.items())
        for vq in model.vq.values():
            vq.reset_usage()
        line["train_seconds"] = time.perf_counter() - t_epoch
        state["epoch_seconds"].append(line["train_seconds"])
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            metrics, _, _ = evaluate(stage, "valid")
            line |= {f"valid_{k}": v for k, v in metrics.items()}
            if early.update(epoch, metrics[t.metric]):
                save_checkpoint(out / "best.safetensors", {"model": model.state_dict(), "epoch": epoch})
            state |= {"best": early.best, "best_epoch": early.best_epoch, "bad": early.bad}
        line["peak_rss_mb"] = _peak_rss_mb()
        state["epoch"], state["elapsed"] = epoch, time.perf_counter() - start
        log.append(line)
        save_checkpoint(last, {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                               "generator": gen.get_state(), "rng": rng_state(), "config": to_dict(cfg)})
        if t.progress:
            epoch_summary(epoch, line["total"], t.metric, line, line["train_seconds"])
        reason = stop_reason(early, state["elapsed"], t.time_budget_s)
        if reason:
            stopped_by = reason
            break
    if (out / "best.safetensors").exists():
        model.load_state_dict(load_checkpoint(out / "best.safetensors")["model"])
    secs = state["epoch_seconds"]
    return {"epochs_run": state["epoch"], "best_epoch": state["best_epoch"], "stopped_by": stopped_by,
            f"best_valid_{t.metric}": state["best"], "train_seconds": state["elapsed"],
            "median_epoch_seconds": float(np.median(secs)) if secs else float("nan")}


def final_tokens(stage: Stage1) -> dict[str, np.ndarray]:
    """Per-entity code ids and the codewords of every codebook in the sentence encoder's space
    (eval mode). Without quantisation the continuous tokens themselves are stored (float16)."""
    stage.model.eval()
    enc = stage.model.encode_all(stage.adj)
    arrays: dict[str, np.ndarray] = {}
    if not stage.cfg.model.plain_lightgcn:
        with torch.no_grad():
            for side in SIDES:
                arrays[f"{side}_codes"] = enc[side].codes.cpu().numpy()
                if not stage.cfg.model.quantize:
                    arrays[f"{side}_tokens"] = stage.model.text_tokens(side, enc[side]).cpu().numpy().astype(np.float16)
            for name, vq in stage.model.vq.items():
                arrays[f"codebook_{name}"] = vq.text_codewords().cpu().numpy()
    return arrays


def codebook_report(stage: Stage1, arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Usage and perplexity of the final assignment (training users and real items only)."""
    if not stage.cfg.model.quantize or stage.cfg.model.plain_lightgcn:
        return {}
    cfg = stage.cfg.model
    users = np.setdiff1d(np.arange(stage.data.n_users), stage.split.cold_users)
    report = {}
    for side, rows in (("user", users), ("item", np.arange(1, stage.data.n_items + 1))):
        codes = arrays[f"{side}_codes"][rows]
        col = 0
        for level in ("macro", "micro"):
            if (level == "macro" and not cfg.use_macro) or (level == "micro" and not cfg.use_micro):
                continue
            width = 1 if level == "macro" else cfg.n_micro
            vq = stage.model.vq[f"{side}_{level}"]
            report[f"{side}_{level}"] = codes_stats(torch.as_tensor(codes[:, col:col + width]), vq.n_codes)
            col += width
    return report


def save(stage: Stage1, summary: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out = Path(stage.cfg.train.out_dir)
    metrics, per_user, users = evaluate(stage, "test")
    arrays = final_tokens(stage)
    report = codebook_report(stage, arrays)
    from llmrec.atomic import atomic_file

    with atomic_file(out / "tokens.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{f"edges_{k}": v for k, v in stage.split.arrays().items()})
    write_text(out / "vocab.json", json.dumps({"user": stage.data.user_vocab, "item": stage.data.item_vocab}))
    lines = []
    for side, recs in stage.sem.records.items():
        vocab = stage.data.user_vocab if side == "user" else stage.data.item_vocab
        lines += [json.dumps({"side": side, "id": int(k), "raw_id": vocab[int(k)], **r})
                  for k, r in sorted(recs.items())]
    write_text(out / "intentions.jsonl", "".join(line + "\n" for line in lines))
    write_text(out / "config.json", json.dumps(to_dict(stage.cfg), indent=1))
    phrases = sorted({p for recs in stage.sem.records.values() for r in recs.values() for p in r["phrases"]})
    if phrases and stage.sem.encoder is not None:  # the bank behind `inspect` and text-only assignment
        with atomic_file(out / "phrases.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, phrases=np.array(phrases), emb=stage.sem.encoder.encode(phrases))
    save_npz(out / "test_per_user.npz", users=users, **per_user)
    result = {"dataset": stage.data.name, "protocol": "link prediction on a seeded uniform hold-out of edges; "
              "full ranking over all items, training (and valid) edges masked",
              "users": stage.data.n_users, "items": stage.data.n_items,
              "edges": {k: int(len(v)) for k, v in stage.split.arrays().items() if k != "cold_users"},
              "tokens_per_entity": 0 if stage.cfg.model.plain_lightgcn else stage.model.n_tokens,
              "parameters": sum(p.numel() for p in stage.model.parameters()),
              **summary, "test": metrics, "codebooks": report, "text_coverage": stage.sem.coverage,
              "peak_rss_mb": _peak_rss_mb(), "config": to_dict(stage.cfg), **(extra or {})}
    write_text(out / "results.json", json.dumps(result, indent=1))
    write_text(out / "results.md", results_markdown(result) + "\n")
    result["per_user"], result["test_users"] = per_user, users
    return result


def results_markdown(r: dict[str, Any]) -> str:
    rows = [f"### Behaviour tokenizer on {r['dataset']} — held-out edges, full ranking",
            "", f"best epoch {r['best_epoch']} of {r['epochs_run']} ({r['stopped_by']}); "
            f"median {r['median_epoch_seconds']:.1f} s/epoch; peak RSS {r['peak_rss_mb']:.0f} MB", "",
            "| HR@10 | NDCG@10 | HR@20 | NDCG@20 |", "|---|---|---|---|",
            "| " + " | ".join(f"{r['test'][k]:.4f}" for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")) + " |"]
    if r["codebooks"]:
        rows += ["", "| codebook | codes | usage | perplexity |", "|---|---|---|---|"]
        rows += [f"| {k} | {v['codes']} | {v['usage']:.1%} | {v['perplexity']:.1f} |"
                 for k, v in r["codebooks"].items()]
    return "\n".join(rows)


def run(cfg: TokenizerRunConfig, data: Prepared | None = None, encoder=None) -> dict[str, Any]:
    stage = setup(cfg, data, encoder)
    summary = fit(stage)
    return save(stage, summary)
