"""The ``llmrec`` command line, end to end, on tiny files and on the real embedded data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import XREC, needs_ml100k, needs_xrec


def cli(*args: str, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "llmrec", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_help_lists_commands():
    out = cli().stdout
    for name in ("data", "train", "eval", "demo", "tokenizer", "align", "explain", "compare-llms"):
        assert f"  {name}" in out
    assert cli("nope", check=False).returncode == 2


def test_cli_does_not_import_torch_for_help():
    code = "import sys; from llmrec.cli import main; main(['--help']); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().endswith("False")


def test_malformed_file_gives_one_line_error(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,timestamp\n1,2,100\n1,3,100\n2,3,yesterday-ish\n")
    done = cli("data", "stats", "--source", "table", "--path", str(path), "data.columns.timestamp=timestamp",
               f"data.cache_dir={tmp_path / 'c'}", check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ratings.csv line 4: column 'timestamp' is 'yesterday-ish'" in lines[0]
    assert "Traceback" not in done.stderr
    done = cli("data", "stats", "--source", "table", "--path", str(path), "data.columns.timestamp=timestamp",
               "--on-bad-rows", "skip", "--json", f"data.cache_dir={tmp_path / 'c'}")
    assert json.loads(done.stdout)["dropped_rows"] == {"bad timestamp": 1}


def test_unknown_config_key_is_one_line(tmp_path):
    done = cli("train", "train.lrr=1", check=False)
    assert done.returncode == 2 and "unknown config key 'train.lrr'" in done.stderr


def test_train_then_eval_on_tiny_data(tiny_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--source", "recbole", "--path", str(tiny_dir), "--out", str(out),
            "data.max_len=8", f"data.cache_dir={tmp_path / 'c'}", "train.epochs=2", "train.progress=false",
            "backbone.hidden=16", "backbone.inner=32", "eval.ks=[5,10]"]
    done = cli(*args, cwd=tmp_path)
    assert "| NDCG |" in done.stdout and "best epoch" in done.stdout
    done = cli("eval", str(out / "best.safetensors"), "--json", cwd=tmp_path)
    full = json.loads(done.stdout)
    results = json.loads((out / "results.json").read_text())
    assert full["metrics"]["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"])
    done = cli("eval", str(out / "best.safetensors"), "--mode", "sampled", "--negatives", "5", cwd=tmp_path)
    assert "SAMPLED (5 uniform negatives)" in done.stdout


@needs_ml100k
def test_data_stats_ml100k(tmp_path):
    stats = json.loads(cli("data", "stats", "--json", f"data.cache_dir={tmp_path}").stdout)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert stats["split"]["valid"] == stats["split"]["test"] == 943
    assert stats["density"] == pytest.approx(100_000 / (943 * 1682))
    assert stats["interactions_per_user"]["min"] == 20  # the published 20-core property


@needs_ml100k
def test_derived_behaviours_on_ml100k_are_labelled(tmp_path):
    out = cli("data", "stats", "data.derive_behaviors=true", "data.derive_scenes=daypart",
              f"data.cache_dir={tmp_path}").stdout
    assert "derived from ratings" in out and "scenes derived from time" in out
    assert "{rated+liked}" in out


@needs_xrec
def test_data_stats_xrec_yelp(tmp_path):
    stats = json.loads(cli("data", "stats", "--json", "--source", "xrec", "--path", str(XREC / "yelp"),
                           f"data.cache_dir={tmp_path}").stdout)
    assert (stats["users"], stats["items"], stats["interactions"]) == (15_962, 14_085, 393_680)
    assert not stats["has_timestamp"] and "random hold-out" in stats["split"]["protocol"]
    assert sum(stats["explanations"].values()) == 3000
    assert stats["explanations"]["train"] > 2000


@needs_ml100k
def test_train_sasrec_on_ml100k_beats_popularity_floor(tmp_path):
    """Two epochs on the real data: far above random ranking (NDCG@10 ~0.003)."""
    out = tmp_path / "run"
    cli("train", "--out", str(out), "train.epochs=2", "train.progress=false", f"data.cache_dir={tmp_path}")
    results = json.loads((out / "results.json").read_text())
    assert results["users"] == 943 and results["items"] == 1682
    assert results["test"]["ndcg@10"] > 0.03
    assert results["test"]["hr@10"] >= results["test"]["hr@5"]


@needs_ml100k
def test_demo_runs_the_pipeline_on_real_data_then_reuses_it(tmp_path):
    """`llmrec demo` on the embedded MovieLens-100k with the real SmolLM2 and MiniLM, shrunk by
    overrides (1 epoch, a few ESIM clusters, 1 user): explanations with evidence, interests, the
    metrics; the second run reports a cache hit for every step and prints the same."""
    small = ["train.epochs=1", "tokenizer.train.epochs=1", "interests.texts.window=5",
             "interests.cluster.preference=q0.0", "interests.extract.max_new_tokens=40", "explain.users=1",
             "explain.top_k=2", f"data.cache_dir={tmp_path / 'cache'}"]
    first = cli("demo", "--out", str(tmp_path / "demo"), *small, cwd=tmp_path)
    out = first.stdout
    assert out.count("      why: ") == 2 and out.count("      evidence: liked before: ") == 2
    assert "ESIM interests (" in out and "| sasrec plain |" in out and "| evidence_plain |" in out
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    (user,) = report["users"]
    for r in user["recommendations"]:
        assert r["title"] != r["item"]  # catalogue titles, not raw ids
        assert r["explanation"].strip() and r["checks"]["echo"] == 0.0
    second = cli("demo", "--out", str(tmp_path / "demo"), *small, cwd=tmp_path)
    steps = second.stdout.split("steps: ", 1)[1].splitlines()[0]
    assert steps.count(" hit ") == 6 and "ran" not in steps and "resumed" not in steps, steps
    shown = [o[o.index("== user"):o.index("steps: ")] for o in (out, second.stdout)]
    assert shown[0] == shown[1]  # the same users, texts, metrics
    assert (tmp_path / "demo" / "report.json").read_text() == json.dumps(report, indent=1, default=str)
