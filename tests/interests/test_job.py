"""The ESIM job end to end on a small grouped dataset with a scripted LLM: texts without held-out
items, artifact and provenance, dry run, --limit, idempotent rerun, SIGKILL + resume, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import to_dict
from llmrec.data.prepare import TRAIN, prepare
from llmrec.errors import DataError
from llmrec.interests.job import run_job, show_user
from llmrec.interests.texts import user_texts
from tests.interests.conftest import scripted_answer

ROOT = Path(__file__).resolve().parents[2]


def scripted(messages):
    return [scripted_answer(m) for m in messages]


def no_llm(messages):
    raise AssertionError("the LLM must not be called")


def strip_times(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r.pop("created_at", None)
    return rows


def test_user_texts_hold_training_items_only(job_cfg):
    data = prepare(job_cfg.data)
    texts = user_texts(data, job_cfg.texts)
    titles = data.items["title"]
    for u, text in zip(texts.users, texts.texts):
        sl = data.rows(int(u))
        train = data.item[sl][data.split[sl] == TRAIN]
        held = data.item[sl][data.split[sl] != TRAIN]
        assert len(held) == 2  # leave-one-out: a valid and a test item
        lines = text.split("\n")
        assert [line.split(" (")[0] for line in lines] == [titles[int(i)] for i in train[-job_cfg.texts.window:]]
        for i in held:
            assert titles[int(i)] not in text
    few = user_texts(data, dataclasses.replace(job_cfg.texts, min_titled=99))
    assert len(few.users) == 0 and (few.n_titled == 5).all()


def test_job_end_to_end(job_cfg):
    stats = run_job(job_cfg, progress=False, generate=scripted)
    assert stats["complete"] and stats["users"] == 24 and stats["clusters"] == 3
    assert stats["llm_calls"] == stats["representatives"] == 3 and stats["calls_saved_factor"] == 8.0
    art = Path(job_cfg.out_dir) / "artifact"
    rows = [json.loads(line) for line in (art / "interests.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    reps = {r["representative"] for r in rows}
    assert len(reps) == 3
    for r in rows:
        # groups are planted by user id prefix: each member inherits its own group's genre
        genre = {"u0": "action", "u1": "romance", "u2": "animation"}[r["user"][:2]]
        assert r["interests"][0]["interest"] == f"{genre} films"
        assert r["status"] == ("ok" if r["user"] == r["representative"] else "inherited")
        assert r["interests"][0]["weight"] == pytest.approx(0.8 * r["similarity"], abs=1e-5)
    emb, w = np.load(art / "interest_emb.npy"), np.load(art / "interest_weight.npy")
    assert emb.shape == (24, 3, 384) and w.shape == (24, 3)
    assert np.allclose(np.linalg.norm(emb[:, 0], axis=1), 1, atol=1e-4) and (w[:, 1:] == 0).all()
    man = json.loads((art / "manifest.json").read_text())
    assert man["llm"] == "smollm2-135m" and len(man["prompt_hash"]) == 12
    assert man["clustering"]["n_clusters"] == 3 and man["config"]["cluster"]["preference"] == "median"
    assert man["extraction_started_at"] <= man["extraction_finished_at"]
    assert man["status_counts"] == {"ok": 3, "repaired": 0, "fallback": 0, "inherited": 21, "no_text": 0,
                                    "pending": 0}
    assert show_user(job_cfg.out_dir, "u1_4")["interests"][0]["interest"] == "romance films"
    with pytest.raises(DataError, match="user 'nobody' is not in"):
        show_user(job_cfg.out_dir, "nobody")

    # idempotent: a rerun calls no LLM and rewrites the same artifact but for timestamps
    before = (art / "interests.jsonl").read_text()
    again = run_job(job_cfg, progress=False, generate=no_llm)
    assert again["llm_calls"] == 3 and again["resumed_from_batch"] == 2
    assert (art / "interests.jsonl").read_text() == before


def test_dry_run_and_limit(job_cfg):
    cfg = dataclasses.replace(job_cfg, cluster=dataclasses.replace(job_cfg.cluster, preference=0.95))
    dry = run_job(cfg, dry_run=True, progress=False, generate=no_llm)
    n = dry["representatives"]
    assert n > 6 and dry["llm_calls_to_make"] == n and dry["estimated_seconds"] == pytest.approx(5.0 * n)
    part = run_job(cfg, limit=4, progress=False, generate=scripted)
    assert not part["complete"] and part["llm_calls"] == 4 and "artifact" not in part
    assert part["representatives_done"] == 4
    assert not (Path(cfg.out_dir) / "artifact").exists()
    dry = run_job(cfg, dry_run=True, progress=False, generate=no_llm)
    assert dry["representatives_done"] == 4 and dry["llm_calls_to_make"] == n - 4
    assert "measured by this job" in dry["estimate_basis"]
    full = run_job(cfg, progress=False, generate=scripted)
    assert full["complete"] and full["llm_calls"] == n


def test_sigkill_then_resume_equals_an_uninterrupted_run(job_cfg, tmp_path):
    base = dataclasses.replace(job_cfg, cluster=dataclasses.replace(job_cfg.cluster, preference=0.95),
                               extract=dataclasses.replace(job_cfg.extract, batch_size=1))
    ref = run_job(dataclasses.replace(base, out_dir=str(tmp_path / "ref")), progress=False, generate=scripted)
    n = ref["representatives"]
    assert n >= 6

    crash = dataclasses.replace(base, out_dir=str(tmp_path / "crash"))
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(to_dict(crash)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.interests.job_child", str(cfg_file), "0.5"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = Path(crash.out_dir) / "llm_job.jsonl.state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["done_batches"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["done_batches"]
    assert 2 <= done < n, "the child should die mid-job"
    assert not (Path(crash.out_dir) / "artifact").exists()

    resumed = run_job(crash, progress=False, generate=scripted)
    assert resumed["resumed_from_batch"] == done
    assert resumed["llm_calls"] == n  # committed answers were not asked again
    ref_out, crash_out = Path(ref["artifact"]), Path(resumed["artifact"])
    assert strip_times(tmp_path / "ref" / "llm_job.jsonl") == strip_times(tmp_path / "crash" / "llm_job.jsonl")
    assert (ref_out / "interests.jsonl").read_text() == (crash_out / "interests.jsonl").read_text()
    assert np.array_equal(np.load(ref_out / "interest_emb.npy"), np.load(crash_out / "interest_emb.npy"))


def test_a_kept_copy_of_an_unfinished_job_resumes_without_asking_again(job_cfg, tmp_path):
    # benchmarks/keep_runs.py keeps a long extraction's state in git, without the user embeddings
    cfg = dataclasses.replace(job_cfg, cluster=dataclasses.replace(job_cfg.cluster, preference=0.95),
                              extract=dataclasses.replace(job_cfg.extract, batch_size=1),
                              out_dir=str(tmp_path / "job"))
    part = run_job(cfg, limit=4, progress=False, generate=scripted)
    n = part["representatives"]
    kept = tmp_path / "kept"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "keep_runs.py"), cfg.out_dir, "--dest", str(kept)],
                   check=True, capture_output=True)
    assert not (kept / "user_emb.npy").exists() and (kept / "llm_job.jsonl.state.json").exists()
    asked = []

    def counted(messages):
        asked.extend(messages)
        return scripted(messages)

    resumed = run_job(dataclasses.replace(cfg, out_dir=str(kept)), progress=False, generate=counted)
    assert resumed["complete"] and resumed["resumed_from_batch"] == 4 and len(asked) == n - 4
    ref = run_job(dataclasses.replace(cfg, out_dir=str(tmp_path / "ref")), progress=False, generate=scripted)
    assert strip_times(kept / "llm_job.jsonl") == strip_times(tmp_path / "ref" / "llm_job.jsonl")
    assert (Path(ref["artifact"]) / "interests.jsonl").read_text() == \
        (Path(resumed["artifact"]) / "interests.jsonl").read_text()


def test_cli_dry_run_show_and_errors(job_cfg, tmp_path, capsys):
    from llmrec.cli import main

    cfg_file = tmp_path / "esim.yaml"
    cfg_file.write_text(json.dumps(to_dict(job_cfg)))  # JSON is YAML
    assert main(["interests", "extract", "-c", str(cfg_file), "--dry-run", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and out["llm_calls_to_make"] == 3
    run_job(job_cfg, progress=False, generate=scripted)
    assert main(["interests", "show", "--run", job_cfg.out_dir, "--user", "u2_0"]) == 0
    shown = capsys.readouterr().out
    assert "animation films" in shown and "recent training history" in shown
    assert main(["interests", "extract", "-c", str(cfg_file), "cluster.preference=lowest"]) == 2
    assert "cluster.preference" in capsys.readouterr().err
    assert main(["interests", "extract", "-c", str(cfg_file), "cluster.damp=0.5"]) == 2
    assert "unknown config key 'cluster.damp'" in capsys.readouterr().err


def test_encoder_reads_the_newest_lines_first():
    from llmrec.interests.texts import for_encoder

    assert for_encoder("old\nmid\nnew") == "new\nmid\nold"
    assert for_encoder("a; b", "; ") == "b; a"
