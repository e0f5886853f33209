"""The resumable LLM batch-job runner: crash safety, repair and fallback, counters."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmrec.errors import ConfigError, DataError
from llmrec.llm.jobs import JobRunner, read_results

RECORDS = [{"id": f"r{i}", "text": f"item {i}"} for i in range(23)]


def fake_llm(batch):
    # record 5 always answers badly at first; record 7 never answers well
    return [("bad" if r["id"] in ("r5", "r7") else json.dumps({"n": int(r["id"][1:])})) for r in batch]


def parse(raw, record):
    value = json.loads(raw)
    if "n" not in value:
        raise ValueError("no n")
    return value["n"]


def repair(records, raws):
    return [json.dumps({"n": 5}) if r["id"] == "r5" else "still bad" for r in records]


def test_counts_repair_and_fallback(tmp_path):
    runner = JobRunner(tmp_path / "out.jsonl", model="m", prompt_hash="h", batch_size=5, progress=False)
    s = runner.run(RECORDS, fake_llm, parse=parse, repair=repair, fallback=lambda r: -1)
    assert (s.records, s.batches, s.failures, s.repaired, s.fallbacks) == (23, 5, 2, 1, 1)
    assert s.calls == 23 + 2
    rows = read_results(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in RECORDS]
    by_id = {r["id"]: r for r in rows}
    assert by_id["r5"]["status"] == "repaired" and by_id["r5"]["parsed"] == 5
    assert by_id["r5"]["attempts"] == ["bad", '{"n": 5}']
    assert by_id["r7"]["status"] == "fallback" and by_id["r7"]["parsed"] == -1
    assert by_id["r3"] == {**by_id["r3"], "status": "ok", "parsed": 3, "model": "m", "prompt_hash": "h"}
    summary = json.loads((tmp_path / "out.jsonl.summary.json").read_text())
    assert summary["fallbacks"] == 1


def test_rerun_after_completion_calls_nothing(tmp_path):
    runner = JobRunner(tmp_path / "out.jsonl", model="m", prompt_hash="h", batch_size=5, progress=False)
    runner.run(RECORDS, fake_llm, parse=parse)
    calls = []
    s = runner.run(RECORDS, lambda b: calls.append(b) or fake_llm(b), parse=parse)
    assert calls == [] and s.resumed_from_batch == 5


def test_bad_inputs(tmp_path):
    runner = JobRunner(tmp_path / "out.jsonl", model="m", prompt_hash="h", batch_size=5, progress=False)
    with pytest.raises(DataError, match="duplicate record id 'a'"):
        runner.run([{"id": "a"}, {"id": "a"}], fake_llm)
    runner.run(RECORDS[:3], fake_llm)
    other = JobRunner(tmp_path / "out.jsonl", model="other", prompt_hash="h", batch_size=5, progress=False)
    with pytest.raises(ConfigError, match="started with model='m'"):
        other.run(RECORDS[:3], fake_llm)


WORKER = """
import json, os, signal, sys
from pathlib import Path
from llmrec.llm.jobs import JobRunner
out, log, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
records = [{"id": f"r{i}"} for i in range(23)]
n = {"batches": 0}
def call(batch):
    n["batches"] += 1
    with log.open("a") as f:
        f.write(" ".join(r["id"] for r in batch) + "\\n")
    if n["batches"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return [json.dumps({"id": r["id"]}) for r in batch]
JobRunner(out, model="m", prompt_hash="h", batch_size=5, progress=False).run(records, call, parse=lambda raw, r: json.loads(raw))
"""


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run = lambda out, log, kill: subprocess.run([sys.executable, str(script), str(out), str(log), str(kill)],  # noqa: E731
                                                capture_output=True, text=True, timeout=120)
    full = run(tmp_path / "full.jsonl", tmp_path / "full.log", 0)
    assert full.returncode == 0, full.stderr
    killed = run(tmp_path / "job.jsonl", tmp_path / "job.log", 3)
    assert killed.returncode == -9  # SIGKILL during the third batch
    assert len(read_results(tmp_path / "job.jsonl")) == 10
    resumed = run(tmp_path / "job.jsonl", tmp_path / "job.log", 0)
    assert resumed.returncode == 0, resumed.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created_at"} for r in rows]  # noqa: E731
    assert strip(read_results(tmp_path / "job.jsonl")) == strip(read_results(tmp_path / "full.jsonl"))
    calls = " ".join((tmp_path / "job.log").read_text().split("\n")).split()
    # batches 1-2 (finished) were called once; batch 3 twice (killed, then redone); none after twice
    assert calls.count("r0") == 1 and calls.count("r9") == 1
    assert calls.count("r10") == 2 and calls.count("r14") == 2 and calls.count("r22") == 1
    assert len((tmp_path / "job.jsonl").read_text().splitlines()) == 23


def test_limit_stops_at_whole_batches_and_a_rerun_continues(tmp_path):
    runner = JobRunner(tmp_path / "out.jsonl", model="m", prompt_hash="h", batch_size=5, progress=False)
    s = runner.run(RECORDS, fake_llm, parse=parse, limit=7)  # 7 records -> 2 whole batches
    assert (s.done_batches, s.complete, s.calls) == (2, False, 10)
    assert len(read_results(tmp_path / "out.jsonl")) == 10
    s = runner.run(RECORDS, fake_llm, parse=parse)
    assert (s.done_batches, s.complete, s.resumed_from_batch, s.calls) == (5, True, 2, 23)
    assert [r["id"] for r in read_results(tmp_path / "out.jsonl")] == [r["id"] for r in RECORDS]
