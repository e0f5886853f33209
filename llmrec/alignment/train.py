"""Stage-2 training loop (outside the model): seeded batches, AdamW on the trainable parts only,
atomic resumable checkpoints, a progress bar and a metrics log."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from llmrec.alignment.config import EVIDENCE_VARIANTS, AlignRunConfig
from llmrec.alignment.model import Aligner, check_variant
from llmrec.alignment.pairs import load_pairs, sample
from llmrec.atomic import write_text
from llmrec.config import from_dict, to_dict
from llmrec.errors import ConfigError
from llmrec.train.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from llmrec.train.loop import MetricsLog
from llmrec.train.seed import rng_state, seed_everything, set_rng_state
from llmrec.progress import progress_bar

KIND = "llmrec-alignment"
# settings that may change between a run and its resume
FREE = {"out_dir", "resume", "progress", "checkpoint_every"}


@dataclass
class Stage2:
    cfg: AlignRunConfig
    tokenizer: Any
    pairs: pd.DataFrame
    backend: Any
    aligner: Aligner


def load_backend_for(cfg: AlignRunConfig, backend: Any = None, kind: str = "hf") -> Any:
    if backend is not None:
        return backend
    from llmrec.llm.factory import load_backend

    return load_backend(cfg.model.llm, backend=kind, batch_size=cfg.eval.batch_size)


def load_inputs(cfg: AlignRunConfig, tokenizer: Any = None, pairs: pd.DataFrame | None = None
                ) -> tuple[Any, pd.DataFrame]:
    """The stage-1 run and the reference pairs, loaded where not given."""
    if tokenizer is None:
        from llmrec.tokenizer.artifacts import TrainedTokenizer

        tokenizer = TrainedTokenizer(cfg.model.tokenizer_run)
    if pairs is None:
        from llmrec.data.prepare import prepare

        pairs = load_pairs(prepare(tokenizer.cfg.data), cfg.references)
    return tokenizer, pairs


def evidence_index(tokenizer: Any, pairs: pd.DataFrame, *, k_titles: int = 3, interests: str = "",
                   ranker: str = "") -> Any:
    """The evidence of every pair of the stage-1 run's dataset (built once per tokenizer and settings).
    ``interests``: an ESIM run folder; ``ranker``: a backbone run folder whose item embeddings rank the
    history (default: the stage-1 LightGCN item embeddings)."""
    from llmrec.alignment.evidence import EvidenceIndex, read_interests, ranker_embeddings, token_glosses
    from llmrec.data.prepare import prepare

    cache = getattr(tokenizer, "_evidence", {})
    key = (k_titles, interests, ranker)
    if key not in cache:
        data = prepare(tokenizer.cfg.data)
        if ranker:
            items = ranker_embeddings(ranker, data.item_vocab)
        else:
            with torch.no_grad():
                _, emb = tokenizer.graph()
            items = emb.detach().cpu().numpy()
        cache[key] = EvidenceIndex(data, items, pairs=pairs, k_titles=k_titles, phrases=token_glosses(tokenizer),
                                   interests=read_interests(interests, data.user_vocab) if interests else None)
        tokenizer._evidence = cache
    return cache[key]


def setup(cfg: AlignRunConfig, *, backend: Any = None, tokenizer: Any = None, pairs: pd.DataFrame | None = None,
          backend_kind: str = "hf") -> Stage2:
    """Everything stage 2 needs; ``backend`` / ``tokenizer`` / ``pairs`` may be passed in (tests,
    sweeps reusing one loaded LLM)."""
    cfg.check(models=backend is None)
    tokenizer, pairs = load_inputs(cfg, tokenizer, pairs)
    check_variant(cfg.model, tokenizer)
    m = cfg.model
    evidence = evidence_index(tokenizer, pairs, k_titles=m.evidence_titles, interests=m.evidence_interests,
                              ranker=m.evidence_ranker) if m.variant in EVIDENCE_VARIANTS else None
    backend = load_backend_for(cfg, backend, backend_kind)
    aligner = Aligner(cfg.model, backend, tokenizer, seed=cfg.train.seed, evidence=evidence)
    return Stage2(cfg, tokenizer, pairs, backend, aligner)


def _comparable(cfg: AlignRunConfig) -> dict:
    d = to_dict(cfg)
    d["train"] = {k: v for k, v in d["train"].items() if k not in FREE}
    return {"model": d["model"], "train": d["train"], "references": d["references"]}


def payload(s: Stage2, **extra: Any) -> dict:
    return {"kind": KIND, "state": s.aligner.trainable_state(), "config": to_dict(s.cfg),
            "llm": s.cfg.model.llm, "prompt": s.aligner.template.name, "prompt_hash": s.aligner.template.hash,
            "tokenizer_run": s.cfg.model.tokenizer_run, **extra}


def fit(s: Stage2) -> dict[str, Any]:
    """Train (or resume) and write ``final.safetensors``; variants without trainable parts just write it."""
    cfg, tc = s.cfg, s.cfg.train
    out = Path(tc.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.json", json.dumps(to_dict(cfg), indent=2))
    final = out / "final.safetensors"
    if tc.resume and checkpoint_exists(final):
        s.aligner.load_trainable_state(load_checkpoint(final)["state"])
        return json.loads((out / "train_summary.json").read_text())
    seed_everything(tc.seed)
    train = sample(s.pairs, "train", tc.max_train_pairs, tc.seed)
    summary: dict[str, Any] = {"variant": cfg.model.variant, "llm": cfg.model.llm, "train_pairs": int(len(train)),
                               "steps": 0, "seconds": 0.0, "trainable_params": 0}
    if not s.aligner.trainable:
        save_checkpoint(final, payload(s, step=0))
        write_text(out / "train_summary.json", json.dumps(summary, indent=2))
        return summary
    if len(train) == 0:
        raise ConfigError("no training pairs (split 'train' is empty)")
    params = [p for p in s.aligner.parameters() if p.requires_grad]
    summary["trainable_params"] = int(sum(p.numel() for p in params))
    opt = torch.optim.AdamW(s.aligner.param_groups(tc.lr), lr=tc.lr, weight_decay=tc.weight_decay)
    per_epoch = math.ceil(len(train) / tc.batch_size)
    total = per_epoch * tc.epochs
    step, seconds = 0, 0.0
    last = out / "last.safetensors"
    if tc.resume and checkpoint_exists(last):
        ck = load_checkpoint(last)
        if _comparable(from_dict(AlignRunConfig, ck["config"])) != _comparable(cfg):
            raise ConfigError(f"{last} was written with another model/train config; use another out_dir "
                              "or train.resume=false")
        s.aligner.load_trainable_state(ck["state"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        step, seconds = ck["step"], ck["seconds"]
    log = MetricsLog(out / "metrics.jsonl")
    log.trim("step", step)  # a crash after the log write, before the checkpoint
    s.aligner.train()
    bar = progress_bar(total=total, initial=step, desc=f"align {cfg.model.variant}", enabled=tc.progress)
    while step < total:
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng(tc.seed + epoch).permutation(len(train))
        rows = train.iloc[order[k * tc.batch_size:(k + 1) * tc.batch_size]]
        t0 = time.perf_counter()
        losses = s.aligner.loss(rows, max_target_tokens=tc.max_target_tokens)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if tc.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        record = {"step": step, "epoch": epoch, **{k: round(v.item(), 5) for k, v in losses.items()},
                  "seconds": round(seconds, 2)}
        log.append(record)
        bar.update(1)
        bar.set_postfix(nll=f"{record['nll']:.3f}")
        if step % tc.checkpoint_every == 0 or step == total:
            save_checkpoint(last, payload(s, optimizer=opt.state_dict(), rng=rng_state(), step=step,
                                          seconds=seconds))
    bar.close()
    s.aligner.eval()
    summary.update(steps=step, seconds=round(seconds, 1), seconds_per_step=round(seconds / max(step, 1), 3),
                   final_nll=_mean_tail(log, "nll"))
    save_checkpoint(final, payload(s, step=step))
    write_text(out / "train_summary.json", json.dumps(summary, indent=2))
    return summary


def _mean_tail(log: MetricsLog, key: str, n: int = 20) -> float | None:
    vals = [r[key] for r in log.records()[-n:] if key in r]
    return round(float(np.mean(vals)), 4) if vals else None


def load_run(run_dir: str | Path, *, backend: Any = None, backend_kind: str = "hf", tokenizer: Any = None,
             pairs: pd.DataFrame | None = None,
             before_llm: Callable[[Any, pd.DataFrame], None] | None = None) -> Stage2:
    """Rebuild a trained stage-2 model from its folder (``final.safetensors``). ``before_llm(tokenizer,
    pairs)`` runs once the stage-1 run and pairs are read, before the LLM loads: input checks there
    fail in seconds instead of after the model load."""
    path = Path(run_dir) / "final.safetensors"
    if not checkpoint_exists(path):
        raise ConfigError(f"{run_dir} holds no final.safetensors (train it with `llmrec align train`)")
    ck = load_checkpoint(path)
    if ck.get("kind") != KIND:
        raise ConfigError(f"{path} is not a stage-2 checkpoint")
    cfg = from_dict(AlignRunConfig, ck["config"])
    if before_llm is not None:
        tokenizer, pairs = load_inputs(cfg, tokenizer, pairs)
        before_llm(tokenizer, pairs)
    s = setup(cfg, backend=backend, tokenizer=tokenizer, pairs=pairs, backend_kind=backend_kind)
    if s.aligner.template.hash != ck["prompt_hash"]:
        raise ConfigError(f"{path}: prompt {ck['prompt']!r} changed since training "
                          f"(hash {ck['prompt_hash']} -> {s.aligner.template.hash})")
    s.aligner.load_trainable_state(ck["state"])
    s.aligner.eval()
    return s
