"""One resumable batch-job runner for every offline LLM job.

Records (dicts with a unique ``id``) are cut into batches at fixed boundaries (record i belongs to
batch i // batch_size). After each batch the runner appends one JSON line per record to the output
file, fsyncs it, and atomically rewrites a state file holding the batch count, the output's byte
length and the counters. A rerun after a crash (even SIGKILL mid-write) truncates the output to the
last committed length and continues with the next batch, so committed records are never sent to
the LLM again and the final file equals an uninterrupted run's (but for ``created_at``).

Each output line: id, raw LLM output (every attempt), parsed value, status (ok / repaired /
fallback), model, prompt hash, created_at. Unparseable answers get ``repair_retries`` repair
attempts, then the recorded fallback: a bad answer never stops the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


from llmrec.atomic import write_text
from llmrec.errors import ConfigError, DataError
from llmrec.progress import progress_bar

Call = Callable[[Sequence[dict]], list[str]]
"""Sends a batch of records to the LLM, returns one raw text per record."""
Parse = Callable[[str, dict], Any]
"""Parses one raw answer; raises ValueError when it is unusable."""
Repair = Callable[[Sequence[dict], Sequence[str]], list[str]]
"""Asks again for the records whose answers did not parse (given those answers)."""


@dataclass
class JobSummary:
    records: int
    batches: int
    done_batches: int
    """Committed batches (less than ``batches`` after a run with ``limit``)."""
    calls: int
    """LLM requests sent in this and earlier (resumed) runs."""
    failures: int
    """First answers that did not parse."""
    repaired: int
    fallbacks: int
    resumed_from_batch: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.done_batches >= self.batches


def _digest(records: Sequence[dict]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _atomic_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value), fsync=True)


class JobRunner:
    def __init__(self, output: str | Path, *, model: str, prompt_hash: str, batch_size: int = 16,
                 repair_retries: int = 1, progress: bool = True, desc: str = "llm job"):
        self.output = Path(output)
        self.state_path = self.output.with_name(self.output.name + ".state.json")
        self.summary_path = self.output.with_name(self.output.name + ".summary.json")
        self.model, self.prompt_hash = model, prompt_hash
        self.batch_size, self.repair_retries = batch_size, repair_retries
        self.progress, self.desc = progress, desc

    def _check_ids(self, records: Sequence[dict]) -> None:
        seen: set = set()
        for i, r in enumerate(records):
            if "id" not in r:
                raise DataError(f"record {i} has no 'id'")
            if r["id"] in seen:
                raise DataError(f"duplicate record id {r['id']!r} (record {i})")
            seen.add(r["id"])

    def _load_state(self, digest: str) -> dict:
        fresh = {"done_batches": 0, "bytes": 0, "calls": 0, "failures": 0, "repaired": 0, "fallbacks": 0,
                 "model": self.model, "prompt_hash": self.prompt_hash, "batch_size": self.batch_size,
                 "records": digest}
        if not self.state_path.exists():
            return fresh
        state = json.loads(self.state_path.read_text())
        for key in ("model", "prompt_hash", "batch_size", "records"):
            if state[key] != fresh[key]:
                raise ConfigError(f"{self.output} was started with {key}={state[key]!r}, now {fresh[key]!r}: "
                                  "use another output path, or delete it and its .state.json to start over")
        return state

    def run(self, records: Sequence[dict], call: Call, *, parse: Parse | None = None,
            repair: Repair | None = None, fallback: Callable[[dict], Any] | None = None,
            limit: int | None = None) -> JobSummary:
        """Process the records not yet committed. ``limit``: stop once this many records are
        committed in total (whole batches; a later run without it continues where this one stopped)."""
        t0 = time.perf_counter()
        self._check_ids(records)
        state = self._load_state(_digest(records))
        resumed = state["done_batches"]
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("ab") as f:  # drop whatever a crash left after the last commit
            f.truncate(state["bytes"])
        n_batches = -(-len(records) // self.batch_size)
        stop = n_batches if limit is None else min(n_batches, -(-max(limit, 0) // self.batch_size))
        bar = progress_bar(total=len(records), initial=min(len(records), resumed * self.batch_size),
                   desc=self.desc, enabled=self.progress)
        for b in range(resumed, stop):
            batch = records[b * self.batch_size:(b + 1) * self.batch_size]
            lines = self._process(batch, call, parse, repair, fallback, state)
            with self.output.open("ab") as f:
                f.write("".join(json.dumps(line, default=str) + "\n" for line in lines).encode())
                f.flush()
                os.fsync(f.fileno())
                state["bytes"] = f.tell()
            state["done_batches"] = b + 1
            _atomic_json(self.state_path, state)
            bar.update(len(batch))
        bar.close()
        summary = JobSummary(records=len(records), batches=n_batches, done_batches=state["done_batches"],
                             calls=state["calls"],
                             failures=state["failures"], repaired=state["repaired"],
                             fallbacks=state["fallbacks"], resumed_from_batch=resumed,
                             seconds=time.perf_counter() - t0)
        _atomic_json(self.summary_path, {**vars(summary), "model": self.model, "prompt_hash": self.prompt_hash,
                                         "output": str(self.output)})
        return summary

    def _process(self, batch, call, parse, repair, fallback, state) -> list[dict]:
        raws = call(batch)
        if len(raws) != len(batch):
            raise RuntimeError(f"the LLM call returned {len(raws)} answers for {len(batch)} records")
        state["calls"] += len(batch)
        attempts = [[r] for r in raws]
        parsed: list[Any] = [None] * len(batch)
        status = ["ok"] * len(batch)
        todo = list(range(len(batch)))
        if parse is not None:
            todo = self._parse_into(batch, raws, todo, parse, parsed)
            state["failures"] += len(todo)
            for _ in range(self.repair_retries if repair is not None else 0):
                if not todo:
                    break
                again = repair([batch[i] for i in todo], [attempts[i][-1] for i in todo])
                state["calls"] += len(todo)
                for i, text in zip(todo, again):
                    attempts[i].append(text)
                fixed = self._parse_into(batch, {i: attempts[i][-1] for i in todo}, todo, parse, parsed)
                for i in set(todo) - set(fixed):
                    status[i] = "repaired"
                state["repaired"] += len(todo) - len(fixed)
                todo = fixed
            for i in todo:
                parsed[i] = fallback(batch[i]) if fallback is not None else None
                status[i] = "fallback"
            state["fallbacks"] += len(todo)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return [{"id": r["id"], "output": attempts[i][-1], "attempts": attempts[i], "parsed": parsed[i],
                 "status": status[i], "model": self.model, "prompt_hash": self.prompt_hash, "created_at": stamp}
                for i, r in enumerate(batch)]

    @staticmethod
    def _parse_into(batch, raws, todo, parse, parsed) -> list[int]:
        failed = []
        for i in todo:
            try:
                parsed[i] = parse(raws[i], batch[i])
            except (ValueError, KeyError, TypeError):
                failed.append(i)
        return failed


def read_results(output: str | Path) -> list[dict]:
    """The committed records of a job's output file."""
    path = Path(output)
    state_path = path.with_name(path.name + ".state.json")
    limit = json.loads(state_path.read_text())["bytes"] if state_path.exists() else None
    data = path.read_bytes()[:limit]
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
