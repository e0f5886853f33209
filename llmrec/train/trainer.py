"""The training loop: AdamW, early stopping on a validation metric, checkpoints and resume.

Under ``torchrun`` / ``accelerate launch`` each process takes a disjoint shard of every global
batch and DistributedDataParallel averages the gradients; with equally many target positions per
shard that equals one process on the combined batch. Every process evaluates the (identical)
model, so stopping decisions agree without communication; only rank 0 writes files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.config import EvalConfig, TrainConfig
from llmrec.data.sequences import EvalExamples, TrainWindows
from llmrec.eval.ranking import EvalResult, evaluate
from llmrec.train.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from llmrec.train.loop import EarlyStopping, MetricsLog, epoch_summary, stop_reason
from llmrec.train.distributed import DistInfo, barrier, init_distributed, resolve_device
from llmrec.train.seed import rng_state, seed_everything, set_rng_state
from llmrec.progress import progress_bar


class Trainer:
    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, *, eval_cfg: EvalConfig,
                 n_items: int, extra: dict[str, Any] | None = None,
                 popularity: np.ndarray | None = None, adapter: torch.nn.Module | None = None):
        """``extra`` (run config, vocabularies, data meta) is stored in every checkpoint.

        ``adapter`` (e.g. the semantic adapter) wraps ``model`` for training: its forward gives the
        loss, its parameters are optimised; evaluation and the saved weights are ``model``'s, the
        adapter's own heads are saved beside them under ``adapter`` so training can resume."""
        self.cfg, self.eval_cfg, self.n_items = cfg, eval_cfg, n_items
        self.extra = extra or {}
        self.popularity = popularity
        self.dist: DistInfo = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.dist)
        self.model = model.to(self.device)
        self.adapter = adapter.to(self.device) if adapter is not None else None
        self.train_module: torch.nn.Module = self.adapter if self.adapter is not None else self.model
        self.step_model: torch.nn.Module = self.train_module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_model = DistributedDataParallel(self.train_module, device_ids=ids)
        adversary = self.model.adversary()
        held_out = {id(p) for p in adversary.parameters()} if adversary is not None else set()
        self.optimizer = torch.optim.AdamW([p for p in self.train_module.parameters() if id(p) not in held_out],
                                           lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.adv_optimizer = (torch.optim.AdamW(adversary.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                              if adversary is not None else None)
        self.out = Path(cfg.out_dir)
        self.epoch = 0
        self.early = EarlyStopping(cfg.patience)
        self.log = MetricsLog(self.out / "metrics.jsonl")
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self._terms: dict[str, float] = {}  # mean auxiliary loss terms of the last epoch

    # -- checkpoints -------------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "best": self.early.best, "best_epoch": self.early.best_epoch,
                "bad_evals": self.early.bad, "rng": rng_state(), "elapsed": self.elapsed,
                "history": self.history, "backbone": self.model.section(),
                "train_config": vars(self.cfg).copy(), **self.extra,
                **({"adapter": self._adapter_state()} if self.adapter is not None else {}),
                **({"adversary_optimizer": self.adv_optimizer.state_dict()} if self.adv_optimizer else {})}

    def _adapter_state(self) -> dict[str, torch.Tensor]:
        """The adapter's own parameters (the backbone's are under ``model``)."""
        return {k: v for k, v in self.adapter.state_dict().items() if not k.startswith("backbone.")}

    def _save(self, name: str) -> None:
        if self.dist.is_main:
            save_checkpoint(self.out / name, self._payload())

    def _try_resume(self) -> bool:
        path = self.out / "last.safetensors"
        if not (self.cfg.resume and checkpoint_exists(path)):
            return False
        ckpt = load_checkpoint(path, self.device)
        self.model.load_state_dict(ckpt["model"])
        if self.adapter is not None:
            missing = self.adapter.load_state_dict(ckpt.get("adapter", {}), strict=False).missing_keys
            missing = [k for k in missing if not k.startswith("backbone.")]
            if missing:
                from llmrec.errors import ConfigError

                raise ConfigError(f"{path}: the checkpoint lacks adapter weights {missing[:3]} (it was trained "
                                  "with other semantic settings; use a new train.out_dir or train.resume=false)")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.adv_optimizer is not None:
            self.adv_optimizer.load_state_dict(ckpt["adversary_optimizer"])
        self.epoch, self.elapsed, self.history = ckpt["epoch"], ckpt["elapsed"], ckpt["history"]
        self.early.best, self.early.best_epoch, self.early.bad = ckpt["best"], ckpt["best_epoch"], ckpt["bad_evals"]
        set_rng_state(ckpt["rng"])
        if self.dist.is_main:  # rewrite the log so an interrupted epoch leaves no duplicate line
            self.log.rewrite(self.history)
        return True

    # -- loop --------------------------------------------------------------------------------
    def fit(self, train: TrainWindows, valid: EvalExamples) -> dict[str, Any]:
        seed_everything(self.cfg.seed)
        resumed = self._try_resume()
        metric = self.cfg.metric
        stopped = "epochs"
        if resumed and self.early.stop:
            stopped = "early stopping (before resume)"
        while self.epoch < self.cfg.epochs and stopped == "epochs":
            t0 = time.perf_counter()
            loss = self._epoch(train)
            self.epoch += 1
            record: dict[str, Any] = {"epoch": self.epoch, "loss": loss, **self._terms}
            if self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs:
                result = self.evaluate(valid)
                record.update({f"valid_{k}": v for k, v in result.metrics.items()})
                improved = self.early.update(self.epoch, result.metrics[metric])
            else:
                improved = False
            self.elapsed += time.perf_counter() - t0
            record.update({"epoch_seconds": time.perf_counter() - t0, "elapsed_seconds": self.elapsed,
                           **self.model.extra_stats()})
            self.history.append(record)
            if self.cfg.progress and self.dist.is_main:
                epoch_summary(self.epoch, loss, metric, record, record["epoch_seconds"], improved)
            if self.dist.is_main:
                self.log.rewrite(self.history)
            if improved:
                self._save("best.safetensors")
            self._save("last.safetensors")
            stopped = stop_reason(self.early, self.elapsed, self.cfg.time_budget_s) or stopped
        return {"epochs": self.epoch, "best_epoch": self.early.best_epoch, f"best_valid_{metric}": self.early.best,
                "stopped_by": stopped, "train_seconds": self.elapsed, "resumed": resumed,
                "world_size": self.dist.world_size}

    def _epoch(self, train: TrainWindows) -> float:
        self.train_module.train()
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)
        total, count = 0.0, 0
        terms: dict[str, float] = {}
        n_batches = math.ceil(len(train) / self.cfg.batch_size)
        batches = train.iterate(self.cfg.batch_size, generator=gen, rank=self.dist.rank,
                                world_size=self.dist.world_size)
        bar = progress_bar(batches, total=n_batches, desc=f"epoch {self.epoch + 1}", leave=False,
                           enabled=self.cfg.progress and self.dist.is_main)
        for batch in bar:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            loss = self.step_model(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.cfg.max_grad_norm)
            self.optimizer.step()
            if self.adv_optimizer is not None:
                self._adversary_step()
            total += loss.item()
            count += 1
            for name, value in getattr(self.train_module, "last_terms", {}).items():
                terms[name] = terms.get(name, 0.0) + value
            bar.set_postfix(loss=f"{total / count:.4f}")
        self._terms = {f"loss_{k}": v / max(1, count) for k, v in terms.items()}
        return total / max(1, count)

    def _adversary_step(self) -> None:
        """One step of the adversary on the latents the main step cached (gradients averaged
        over processes by hand: this backward runs outside DistributedDataParallel)."""
        self.adv_optimizer.zero_grad(set_to_none=True)
        self.model.adversary_loss().backward()
        if self.dist.enabled:
            for p in self.model.adversary().parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.dist.world_size
        self.adv_optimizer.step()

    def evaluate(self, examples: EvalExamples) -> EvalResult:
        return evaluate(self.model, examples, self.eval_cfg, n_items=self.n_items, device=self.device,
                        popularity=self.popularity)

    def load_best(self) -> None:
        barrier(self.dist)  # rank 0 may still be writing best.safetensors
        path = self.out / "best.safetensors"
        if path.exists():
            self.model.load_state_dict(load_checkpoint(path, self.device)["model"])
