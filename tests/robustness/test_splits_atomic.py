"""Hash explanation splits (one changed row moves only itself), atomic artifacts under kill -9, and
the grep of the judging: nothing in llmrec unpickles, the converter included."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.data.explanations import split_explanations

ROOT = Path(__file__).resolve().parents[2]
KW = dict(seed=3, valid_ratio=0.1, test_ratio=0.1, zero_shot_ratio=0.05)


def table(n_users=300, n_items=400, n=3000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = {(f"u{rng.integers(n_users)}", f"i{rng.integers(n_items)}") for _ in range(n)}
    frame = pd.DataFrame(sorted(pairs), columns=["user", "item"])
    return frame.assign(explanation="text")


def by_pair(frame: pd.DataFrame) -> dict:
    return dict(zip(zip(frame["user"], frame["item"]), frame["split"]))


def test_removing_a_row_moves_only_that_row():
    full = table()
    base = by_pair(split_explanations(full, **KW))
    rng = np.random.default_rng(1)
    for drop in rng.choice(len(full), 25, replace=False):
        row = full.iloc[drop]
        after = by_pair(split_explanations(full.drop(index=drop), **KW))
        changed = {k for k in after if after[k] != base[k]}
        if base[(row["user"], row["item"])] == "zero_shot":
            # the precision's one exception: other users' pairs on a zero-shot item lose 'excluded'
            assert all(base[k] == "excluded" and k[1] == row["item"] for k in changed)
        else:
            assert not changed
    added = pd.concat([full, pd.DataFrame([{"user": "new-user", "item": "i1", "explanation": "x"}])])
    after = by_pair(split_explanations(added, **KW))
    assert {k for k in base if after[k] != base[k]} <= {k for k in base if k[1] == "i1"}


def test_hash_split_shares_and_zero_shot_isolation():
    out = split_explanations(table(), **KW)
    share = out["split"].value_counts(normalize=True)
    kept = out[out["split"].isin(["train", "valid", "test"])]
    assert abs(len(kept[kept["split"] == "test"]) / len(kept) - 0.1) < 0.03
    assert abs(len(kept[kept["split"] == "valid"]) / len(kept) - 0.1) < 0.03
    assert 0 < share["zero_shot"] < 0.12
    zero = out[out["split"] == "zero_shot"]
    assert not set(zero["user"]) & set(kept["user"]) and not set(zero["item"]) & set(kept["item"])
    assert by_pair(out) == by_pair(split_explanations(table().sample(frac=1, random_state=5), **KW))  # order-free


def test_version_1_reproduces_the_permutation_split():
    """The published tables' split (seeded permutations over dense ids), unchanged."""
    frame = table().assign(user=lambda f: f["user"].str[1:].astype(int), item=lambda f: f["item"].str[1:].astype(int))
    v1 = split_explanations(frame, version=1, **KW)
    rng = np.random.default_rng(KW["seed"])
    users = np.array(sorted(frame["user"].unique()))
    zero_users = set(rng.permutation(users)[:int(round(len(users) * 0.05))].tolist())
    assert set(v1.loc[v1["split"] == "zero_shot", "user"]) == zero_users
    assert (v1["split"] == "test").sum() == int(round((v1["split"].isin(["train", "valid", "test"])).sum() * 0.1))


WRITER = """
import sys, torch
from llmrec.train.checkpoint import save_checkpoint
path = sys.argv[1]
for v in range(1, 10_000):
    save_checkpoint(path, {"version": v, "w": torch.full((4_000_000,), float(v))})
    print(v, flush=True)
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_kill_9_during_checkpoint_write_leaves_a_whole_file(tmp_path, delay):
    from llmrec.train.checkpoint import load_checkpoint

    path = tmp_path / "last.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # one whole version exists
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(path)
    assert ck["version"] >= 1 and bool((ck["w"] == float(ck["version"])).all())
    # what a kill can leave besides the target: our own hidden temporary, never a second file
    assert all(p.name.startswith(".last.safetensors.") for p in tmp_path.iterdir() if p.name != "last.safetensors")


DIR_WRITER = """
import sys, pathlib
from llmrec.atomic import atomic_dir
root = pathlib.Path(sys.argv[1])
for v in range(1, 10_000):
    with atomic_dir(root / "artifact") as tmp:
        for k in range(50):
            (tmp / f"part{k}.txt").write_text(str(v) * 20_000)
    print(v, flush=True)
"""


def test_kill_9_during_folder_write_never_leaves_a_mixed_folder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", DIR_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = tmp_path / "artifact"
    if not folder.exists():  # killed between the two renames: the previous version is kept aside whole
        folder = next(tmp_path.glob(".artifact.old.*/artifact"))
    texts = {p.read_text() for p in folder.iterdir()}
    assert len(texts) == 1 and len(list(folder.iterdir())) == 50


FORBIDDEN = r"weights_only=False|pickle\.load|allow_pickle=True|read_pickle|joblib\.load|yaml\.unsafe_load|" \
            r"trust_remote_code=True"


def test_nothing_unpickles():
    hits = []
    for path in (ROOT / "llmrec").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(FORBIDDEN, line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, hits
