"""The pieces every training loop shares (backbone trainer, BEAT stage 1, BEAT stage 2): early
stopping on a validation metric, the stop reason, the per-epoch summary line and the JSON-lines
metrics log that a resumed run trims back to its last checkpoint. The loops themselves stay in
their stages (their batches differ); these helpers keep the knobs and the bookkeeping identical."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from llmrec.atomic import write_text


@dataclass
class EarlyStopping:
    """Stop after ``patience`` evaluations without a better validation metric (higher is better)."""

    patience: int
    best: float = -math.inf
    best_epoch: int = -1
    bad: int = 0

    def update(self, epoch: int, score: float) -> bool:
        """Record an evaluation; True when it is the best so far."""
        if score > self.best:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience


def stop_reason(early: EarlyStopping, elapsed: float, time_budget_s: float | None) -> str | None:
    """Why the loop should end after this epoch (None: go on)."""
    if early.stop:
        return "early stopping"
    if time_budget_s is not None and elapsed >= time_budget_s:
        return f"time budget ({time_budget_s:.0f} s)"
    return None


def epoch_summary(epoch: int, loss: float, metric: str, record: dict[str, Any], seconds: float,
                  improved: bool = False) -> None:
    """One line per epoch, printed above any progress bar."""
    shown = f", valid {metric} {record[f'valid_{metric}']:.4f}" if f"valid_{metric}" in record else ""
    tqdm.write(f"epoch {epoch}: loss {loss:.4f}{shown}{' (best)' if improved else ''} [{seconds:.1f} s]")


class MetricsLog:
    """``metrics.jsonl``: one JSON record per epoch or step, appended; on resume, records past the
    checkpoint (written after it, before a crash) are dropped so none is duplicated."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def trim(self, key: str, upto: int) -> None:
        """Keep the records whose ``key`` is at most ``upto`` (0 = start afresh)."""
        if self.path.exists():
            keep = [r for r in self.records() if r[key] <= upto]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
