"""Semantic-signal adapter (EIMF): hand-computed terms, gradients into every backbone, bit-for-bit
equality with both weights 0, resume, artifact errors, LLM-free scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones.plugins.semantic import SemanticAdapter
from llmrec.backbones.registry import list_backbones
from llmrec.config import RunConfig, from_dict
from llmrec.data.prepare import prepare
from llmrec.errors import DataError
from llmrec.backbones.plugins.semantic_table import load_semantic_table
from llmrec.train.checkpoint import load_checkpoint
from llmrec.train.run import run
from tests.backbones.test_contract import N_USERS, tiny_batch, tiny_model
from tests.conftest import crash_then_resume, write_semantic_artifact

HERE = Path(__file__).parent


def tiny_adapter(model, *, align=1.0, predict=1.0, k=3, dim=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(N_USERS, k, dim, generator=g)
    weight = torch.rand(N_USERS, k, generator=g) + 0.1
    weight[N_USERS - 1] = 0  # a user without interests
    cluster = torch.tensor([0, 1, 0, 2, 1, 2, -1])
    return SemanticAdapter(model, emb, weight, cluster, dim=model.item_embeddings().size(-1),
                           align_weight=align, predict_weight=predict, temperature=0.5)


def reference_alignment(adapter, user, users):
    """The docstring's definition, one pair at a time."""
    b = F.normalize(adapter.align_head(user if user.dim() == 3 else user[:, None]), dim=-1)
    logits = torch.full((len(users), len(users)), float("-inf"))
    for i, ui in enumerate(users.tolist()):
        for j, uj in enumerate(users.tolist()):
            w = adapter.sem_w[uj]
            if adapter.sem_w[ui].sum() == 0 or w.sum() == 0:
                continue
            ci, cj = int(adapter.cluster[ui]), int(adapter.cluster[uj])
            if i != j and (ui == uj or (ci == cj and ci >= 0)):
                continue
            s = F.normalize(adapter.to_behaviour(adapter.sem_emb[uj]), dim=-1)  # (K', D)
            best = (b[i] @ s.T).max(dim=0).values  # (K',)
            logits[i, j] = (best * w).sum() / w.sum() / adapter.temperature
    rows = [i for i, u in enumerate(users.tolist()) if adapter.sem_w[u].sum() > 0]
    ce_r = sum(-torch.log_softmax(logits[i], 0)[i] for i in rows) / len(rows)
    ce_c = sum(-torch.log_softmax(logits[:, i], 0)[i] for i in rows) / len(rows)
    return (ce_r + ce_c) / 2


def test_alignment_and_prediction_match_hand_computation():
    model = tiny_model("ibim")
    adapter = tiny_adapter(model)
    users = torch.tensor([0, 2, 0, 6, 3, 1])  # a repeated user, a shared cluster, a user without interests
    g = torch.Generator().manual_seed(1)
    user = torch.randn(len(users), 4, 16, generator=g)
    sem, w = adapter.sem_emb[users], adapter.sem_w[users]
    got = adapter.alignment(user, sem, w, users)
    assert torch.allclose(got, reference_alignment(adapter, user, users), atol=1e-5)
    pred = F.normalize(adapter.predictor(user), dim=-1)
    total, wsum = 0.0, 0.0
    for r, u in enumerate(users.tolist()):
        for p in range(sem.size(1)):
            best = max(float((pred[r, k] @ adapter.sem_emb[u, p]).detach()) for k in range(4))
            total += float(adapter.sem_w[u, p]) * (1 - best)
            wsum += float(adapter.sem_w[u, p])
    assert float(adapter.prediction(user, sem, w).detach()) == pytest.approx(total / wsum, rel=1e-5)


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("term", ["align", "predict"])
def test_each_term_sends_gradients_into_every_backbone(name, term):
    model = tiny_model(name)
    adapter = tiny_adapter(model, align=1.0 if term == "align" else 0.0, predict=1.0 if term == "predict" else 0.0)
    batch = tiny_batch()
    torch.manual_seed(0)  # dropout is 0 and augmentations (BLADE, DSPnet) draw the same numbers twice:
    total = adapter(batch)
    torch.manual_seed(0)
    aux = total - model.loss(batch)  # ... so the backbone loss is the same both times
    assert set(adapter.last_terms) == {term} and aux.item() > 0
    aux.backward()
    grads = [p.grad for p in model.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{term} gives {name} no gradient"


def test_no_terms_and_no_interests_in_batch():
    model = tiny_model("sasrec")
    off = tiny_adapter(model, align=0.0, predict=0.0)
    assert off.to_behaviour is None and off.predictor is None
    assert len(list(off.parameters())) == len(list(model.parameters()))  # no heads of its own
    batch = tiny_batch()
    assert torch.equal(off(batch), model.loss(batch))
    on = tiny_adapter(model)
    on.sem_w.zero_()  # nobody in the batch has interests: terms are 0 but stay in the graph
    loss = on(batch)
    assert on.last_terms == {"align": 0.0, "predict": 0.0}
    assert torch.allclose(loss, model.loss(batch))


def semantic_run(tiny_cfg, out, artifact, *, backbone="ibim", align=0.1, predict=0.1, **train):
    return from_dict(RunConfig, {
        "data": {**vars(tiny_cfg)},
        "backbone": {"name": backbone, "hidden": 16, "n_layers": 1, "inner": 32, "dropout": 0.3},
        "train": {"epochs": 3, "batch_size": 8, "out_dir": str(out), "progress": False, "patience": 100, **train},
        "eval": {"ks": [5, 10]},
        "semantic": {"interests": str(artifact) if artifact else None, "align_weight": align,
                     "predict_weight": predict},
    })


@pytest.fixture
def artifact(tiny_cfg, tmp_path):
    users = prepare(tiny_cfg).user_vocab
    return write_semantic_artifact(tmp_path / "esim" / "artifact", users, missing=2)


def lines(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backbone", ["sasrec", "ibim"])
def test_zero_weights_reproduce_the_plain_backbone_bit_for_bit(tiny_cfg, tmp_path, artifact, backbone):
    plain = run(semantic_run(tiny_cfg, tmp_path / "plain", None, backbone=backbone))
    zero = run(semantic_run(tiny_cfg, tmp_path / "zero", artifact, backbone=backbone, align=0.0, predict=0.0))
    run(semantic_run(tiny_cfg, tmp_path / "on", artifact, backbone=backbone))
    assert zero["semantic"]["users_covered"] == 10 and plain["semantic"] is None
    assert [r["loss"] for r in lines(tmp_path / "plain")] == [r["loss"] for r in lines(tmp_path / "zero")]
    a = load_checkpoint(tmp_path / "plain" / "last.safetensors")["model"]
    b = load_checkpoint(tmp_path / "zero" / "last.safetensors")["model"]
    c = load_checkpoint(tmp_path / "on" / "last.safetensors")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["test"] == zero["test"]
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the terms do change training
    record = lines(tmp_path / "on")[-1]
    assert record["loss_align"] > 0 and record["loss_predict"] > 0


def test_resume_with_the_adapter_matches_an_uninterrupted_run(tiny_cfg, tmp_path, artifact, monkeypatch):
    run(semantic_run(tiny_cfg, tmp_path / "full", artifact))
    resumed = crash_then_resume(monkeypatch, lambda: run(semantic_run(tiny_cfg, tmp_path / "resumed", artifact)))
    assert resumed["resumed"]
    full, res = (load_checkpoint(tmp_path / d / "last.safetensors") for d in ("full", "resumed"))
    for part in ("model", "adapter"):
        assert full[part].keys() == res[part].keys() and full[part]
        assert all(torch.equal(full[part][k], res[part][k]) for k in full[part])
    assert lines(tmp_path / "full") == [{**r, **{k: lines(tmp_path / "full")[i][k] for k in r if "seconds" in k}}
                                        for i, r in enumerate(lines(tmp_path / "resumed"))]


def test_artifact_errors_name_the_file_line_and_ids(tmp_path):
    folder = write_semantic_artifact(tmp_path / "a", ["u1", "u2"])
    table = load_semantic_table(tmp_path / "a", ["u2", "u9", "u1"])  # aligned by raw id
    assert table.covered == 2 and table.weights[1].sum() == 0 and table.cluster.tolist() == [1, -1, 0]
    with pytest.raises(DataError, match="no user of this dataset appears"):
        load_semantic_table(folder, ["x", "y"])
    with (folder / "interests.jsonl").open("a") as f:
        f.write('{"user": "u3"}\n')
    with pytest.raises(DataError, match=r"interests.jsonl line 3: 'index'"):
        load_semantic_table(folder, ["u1"])
    (folder / "interest_weight.npy").unlink()
    with pytest.raises(DataError, match="interest_weight.npy does not exist"):
        load_semantic_table(folder, ["u1"])


def test_trained_model_scores_without_any_llm_or_encoder(tiny_cfg, tmp_path, artifact):
    """A model trained with semantic signals is served from its checkpoint alone."""
    run(semantic_run(tiny_cfg, tmp_path / "r", artifact))
    ckpt = tmp_path / "r" / "best.safetensors"
    items = [[0, 0, 3, 5, 7, 9, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]]
    proc = subprocess.run([sys.executable, str(HERE / "llm_free_child.py"), str(ckpt), json.dumps(items)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["forbidden_modules"] == [], report["forbidden_modules"]
    assert report["data_files_opened"] == [str(ckpt)]  # the checkpoint and nothing else
    from llmrec.train.checkpoint import load_model

    model, _ = load_model(ckpt)
    with torch.no_grad():
        expected = model.eval().score({"items": torch.tensor(items)})[:, 1:]
    assert torch.allclose(torch.tensor(report["scores"]), expected, atol=1e-5)


def test_resuming_a_plain_run_with_semantic_losses_is_refused(tiny_cfg, tmp_path, artifact):
    from llmrec.errors import ConfigError

    run(semantic_run(tiny_cfg, tmp_path / "r", None, epochs=1))
    with pytest.raises(ConfigError, match="lacks adapter weights"):
        run(semantic_run(tiny_cfg, tmp_path / "r", artifact, epochs=2))
