"""The shuffled-clusters control: same clusters and weights, another cluster's answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.backbones.plugins.semantic_table import load_semantic_table
from llmrec.cli import main as cli
from llmrec.errors import DataError
from llmrec.interests.control import sattolo, shuffle_clusters
from llmrec.interests.job import run_job
from tests.interests.conftest import scripted_answer

GENRE = {"u0": "action films", "u1": "romance films", "u2": "animation films"}


def scripted(messages):
    return [scripted_answer(m) for m in messages]


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "artifact" / "interests.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_sattolo_is_one_cycle_without_fixed_points(n):
    for seed in range(20):
        perm = sattolo(n, np.random.default_rng(seed))
        assert sorted(perm) == list(range(n)) and (perm != np.arange(n)).all()
        seen, i = {0}, int(perm[0])
        while i != 0:
            seen.add(i)
            i = int(perm[i])
        assert len(seen) == n  # one cycle


def test_every_cluster_carries_another_clusters_answer(job_cfg, tmp_path):
    run_job(job_cfg, progress=False, generate=scripted)  # real MiniLM embeddings, scripted answers
    out = tmp_path / "shuffled"
    summary = shuffle_clusters(job_cfg.out_dir, out, seed=0)
    assert summary["clusters_shuffled"] == 3 and summary["users_with_interests"] == 24
    real, shuf = rows(Path(job_cfg.out_dir)), rows(out)
    src = Path(job_cfg.out_dir) / "artifact"
    emb, w = np.load(src / "interest_emb.npy"), np.load(src / "interest_weight.npy")
    emb2, w2 = np.load(out / "artifact" / "interest_emb.npy"), np.load(out / "artifact" / "interest_weight.npy")
    phrase_row = {r["interests"][0]["interest"]: emb[r["index"], 0] for r in real}
    donors = {}
    for a, b in zip(real, shuf):
        assert (a["user"], a["cluster"], a["similarity"], a["status"]) == (b["user"], b["cluster"], b["similarity"],
                                                                         b["status"])
        own, got = GENRE[a["user"][:2]], b["interests"][0]["interest"]
        assert a["interests"][0]["interest"] == own and got != own  # the groups are planted by id prefix
        donors.setdefault(a["cluster"], set()).add(b["answer_from_cluster"])
        assert b["interests"][0]["weight"] == pytest.approx(0.8 * b["similarity"], abs=1e-5)
        assert w2[b["index"], 0] == pytest.approx(w[a["index"], 0], abs=1e-6)  # same similarity weighting
        assert np.array_equal(emb2[b["index"], 0], phrase_row[got])
    assert all(len(d) == 1 for d in donors.values())  # a cluster's members keep sharing one answer
    assert sorted(next(iter(d)) for d in donors.values()) == sorted(donors)  # a permutation of the clusters
    man = json.loads((out / "artifact" / "manifest.json").read_text())
    assert man["control"] == summary and man["llm"] == "smollm2-135m"

    # it trains like any artifact; the same seed gives the same control, another seed may differ
    users = [r["user"] for r in real]
    table = load_semantic_table(out, users)
    assert table.covered == 24 and np.array_equal(table.embeddings, emb2)
    again = shuffle_clusters(job_cfg.out_dir, tmp_path / "again", seed=0)
    assert again == {**summary, "source": str(job_cfg.out_dir)}
    assert rows(tmp_path / "again") == shuf
    with pytest.raises(DataError, match="already a control"):
        shuffle_clusters(out, tmp_path / "twice")


def test_shuffle_errors_and_cli(job_cfg, tmp_path, capsys):
    with pytest.raises(DataError, match="manifest.json does not exist"):
        shuffle_clusters(tmp_path / "nothing", tmp_path / "out")
    run_job(job_cfg, progress=False, generate=scripted)
    assert cli(["interests", "shuffle", "--run", job_cfg.out_dir, "--out", str(tmp_path / "c"), "--seed", "3"]) == 0
    assert '"seed": 3' in capsys.readouterr().out
    assert cli(["interests", "show", "--run", str(tmp_path / "c"), "--user", "u1_4"]) == 0
    shown = capsys.readouterr().out
    assert "control: phrases from cluster" in shown and "romance films" not in shown
    assert cli(["interests", "shuffle", "--run", job_cfg.out_dir]) == 2
    assert "shuffle needs --run" in capsys.readouterr().err
