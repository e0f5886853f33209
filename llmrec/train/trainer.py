"""The training loop: AdamW, early stopping on a validation metric, checkpoints and resume.

Under ``torchrun`` / ``accelerate launch`` each process takes a disjoint shard of every global
batch and DistributedDataParallel averages the gradients; with equally many target positions per
shard that equals one process on the combined batch. Every process evaluates the (identical)
model, so stopping decisions agree without communication; only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.atomic import write_text
from llmrec.config import EvalConfig, TrainConfig
from llmrec.data.sequences import EvalExamples, TrainWindows
from llmrec.eval.ranking import EvalResult, evaluate
from llmrec.train.checkpoint import load_checkpoint, save_checkpoint
from llmrec.train.distributed import DistInfo, barrier, init_distributed, resolve_device
from llmrec.train.seed import rng_state, seed_everything, set_rng_state


class Trainer:
    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, *, eval_cfg: EvalConfig,
                 n_items: int, extra: dict[str, Any] | None = None,
                 popularity: np.ndarray | None = None):
        """``extra`` (run config, vocabularies, data meta) is stored in every checkpoint."""
        self.cfg, self.eval_cfg, self.n_items = cfg, eval_cfg, n_items
        self.extra = extra or {}
        self.popularity = popularity
        self.dist: DistInfo = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.dist)
        self.model = model.to(self.device)
        self.step_model: torch.nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_model = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.out = Path(cfg.out_dir)
        self.epoch = 0
        self.best: float = -math.inf
        self.best_epoch = -1
        self.bad_evals = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0

    # -- checkpoints -------------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch,
                "bad_evals": self.bad_evals, "rng": rng_state(), "elapsed": self.elapsed,
                "history": self.history, "backbone": self.model.section(),
                "train_config": vars(self.cfg).copy(), **self.extra}

    def _save(self, name: str) -> None:
        if self.dist.is_main:
            save_checkpoint(self.out / name, self._payload())

    def _try_resume(self) -> bool:
        path = self.out / "last.pt"
        if not (self.cfg.resume and path.exists()):
            return False
        ckpt = load_checkpoint(path, self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch, self.best, self.best_epoch = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"]
        self.bad_evals, self.elapsed, self.history = ckpt["bad_evals"], ckpt["elapsed"], ckpt["history"]
        set_rng_state(ckpt["rng"])
        if self.dist.is_main:  # rewrite the log so an interrupted epoch leaves no duplicate line
            self._write_log()
        return True

    def _write_log(self) -> None:
        write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))

    # -- loop --------------------------------------------------------------------------------
    def fit(self, train: TrainWindows, valid: EvalExamples) -> dict[str, Any]:
        seed_everything(self.cfg.seed)
        resumed = self._try_resume()
        metric = self.cfg.metric
        stopped = "epochs"
        if resumed and self.bad_evals >= self.cfg.patience:
            stopped = "early stopping (before resume)"
        while self.epoch < self.cfg.epochs and stopped == "epochs":
            t0 = time.perf_counter()
            loss = self._epoch(train)
            self.epoch += 1
            record: dict[str, Any] = {"epoch": self.epoch, "loss": loss}
            if self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs:
                result = self.evaluate(valid)
                record.update({f"valid_{k}": v for k, v in result.metrics.items()})
                score = result.metrics[metric]
                if score > self.best:
                    self.best, self.best_epoch, self.bad_evals = score, self.epoch, 0
                    improved = True
                else:
                    self.bad_evals += 1
                    improved = False
            else:
                improved = False
            self.elapsed += time.perf_counter() - t0
            record.update({"epoch_seconds": time.perf_counter() - t0, "elapsed_seconds": self.elapsed,
                           **self.model.extra_stats()})
            self.history.append(record)
            if self.cfg.progress and self.dist.is_main:
                shown = f", valid {metric} {record[f'valid_{metric}']:.4f}" if f"valid_{metric}" in record else ""
                tqdm.write(f"epoch {self.epoch}: loss {loss:.4f}{shown}{' (best)' if improved else ''} "
                           f"[{record['epoch_seconds']:.1f} s]")
            if self.dist.is_main:
                self._write_log()
            if improved:
                self._save("best.pt")
            self._save("last.pt")
            if self.bad_evals >= self.cfg.patience:
                stopped = "early stopping"
            elif self.cfg.time_budget_s is not None and self.elapsed >= self.cfg.time_budget_s:
                stopped = f"time budget ({self.cfg.time_budget_s:.0f} s)"
        return {"epochs": self.epoch, "best_epoch": self.best_epoch, f"best_valid_{metric}": self.best,
                "stopped_by": stopped, "train_seconds": self.elapsed, "resumed": resumed,
                "world_size": self.dist.world_size}

    def _epoch(self, train: TrainWindows) -> float:
        self.model.train()
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)
        total, count = 0.0, 0
        n_batches = math.ceil(len(train) / self.cfg.batch_size)
        batches = train.iterate(self.cfg.batch_size, generator=gen, rank=self.dist.rank,
                                world_size=self.dist.world_size)
        bar = tqdm(batches, total=n_batches, desc=f"epoch {self.epoch + 1}", leave=False,
                   disable=None if (self.cfg.progress and self.dist.is_main) else True)  # None: off when not a terminal
        for batch in bar:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            loss = self.step_model(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            total += loss.item()
            count += 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(1, count)

    def evaluate(self, examples: EvalExamples) -> EvalResult:
        return evaluate(self.model, examples, self.eval_cfg, n_items=self.n_items, device=self.device,
                        popularity=self.popularity)

    def load_best(self) -> None:
        barrier(self.dist)  # rank 0 may still be writing best.pt
        path = self.out / "best.pt"
        if path.exists():
            self.model.load_state_dict(load_checkpoint(path, self.device)["model"])
