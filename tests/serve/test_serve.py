"""`llmrec serve`: a real uvicorn server on a free loopback port, its answers and error codes."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch

from llmrec.config import RunConfig, from_dict
from llmrec.serve.app import create_app
from llmrec.serve.recommender import Recommender
from llmrec.train.run import run
from tests.conftest import needs_ml100k
from tests.train.test_distributed import free_port


def train(tiny_cfg, out, backbone):
    cfg = from_dict(RunConfig, {"data": {**vars(tiny_cfg)}, "backbone": {"hidden": 16, **backbone},
                                "train": {"epochs": 1, "batch_size": 8, "out_dir": str(out), "progress": False,
                                          "metric": "ndcg@5"},
                                "eval": {"ks": [5]}})
    run(cfg)
    return out


class Server:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def sasrec_run(tiny_cfg, tmp_path):
    return train(tiny_cfg, tmp_path / "sasrec", {"name": "sasrec", "n_layers": 1, "inner": 32})


def test_recommend_endpoints_answer_and_match_the_model(sasrec_run):
    rec = Recommender.from_run(sasrec_run)
    with Server(create_app(rec)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        info = client.get("/v1/models").json()["recommender"]
        assert info["name"] == "sasrec" and info["users"] == 12
        user = next(iter(rec.user_index))
        r = client.post("/v1/recommend", json={"user_id": user, "k": 5})
        assert r.status_code == 200
        items = r.json()["items"]
        assert len(items) == 5 and [x["score"] for x in items] == sorted((x["score"] for x in items), reverse=True)
        u = rec.user_index[user]
        seen = {rec.item_vocab[i] for i in rec.seen[u]}
        assert not seen & {x["item_id"] for x in items}
        # the same numbers as the model on the user's latest history
        with torch.no_grad():
            scores = rec.model.score({"items": torch.from_numpy(rec.inputs["item"][u:u + 1]),
                                      "users": torch.tensor([u])})[0]
        first = rec.item_index[items[0]["item_id"]]
        assert items[0]["score"] == pytest.approx(float(scores[first]), rel=1e-5)
        all_items = client.post("/v1/recommend", json={"user_id": user, "k": 100, "exclude_seen": False}).json()
        assert len(all_items["items"]) == len(rec.item_vocab) - 1  # k capped at the catalogue
        # cold start: a new user described by their interactions
        new = client.post("/v1/recommend", json={"user_id": "newcomer", "k": 3,
                                                 "interactions": [rec.item_vocab[1], rec.item_vocab[2]]})
        assert new.status_code == 200 and len(new.json()["items"]) == 3
        assert not {rec.item_vocab[1], rec.item_vocab[2]} & {x["item_id"] for x in new.json()["items"]}


def test_errors_name_the_id_and_bound_the_input(sasrec_run):
    rec = Recommender.from_run(sasrec_run)
    with Server(create_app(rec, max_body_bytes=2000)) as client:
        r = client.post("/v1/recommend", json={"user_id": "nobody"})
        assert r.status_code == 404 and "unknown user id: 'nobody'" in r.json()["detail"]
        r = client.post("/v1/recommend", json={"user_id": "x", "interactions": [rec.item_vocab[1], "no-such-item"]})
        assert r.status_code == 404 and "'no-such-item'" in r.json()["detail"]
        for body in ({"user_id": "u1", "k": 0}, {"user_id": "u1", "k": 101}, {"user_id": 5, "k": "ten"}, {}):
            assert client.post("/v1/recommend", json=body).status_code == 422, body
        assert client.post("/v1/recommend", content=b"{not json", headers={"content-type": "application/json"}
                           ).status_code == 422
        big = {"user_id": "x", "interactions": ["i"] * 600}
        assert client.post("/v1/recommend", json=big).status_code == 413


def test_api_key_and_per_user_models(tiny_cfg, tmp_path, sasrec_run):
    with Server(create_app(Recommender.from_run(sasrec_run), api_key="s3cret")) as client:
        user = next(iter(Recommender.from_run(sasrec_run).user_index))
        assert client.post("/v1/recommend", json={"user_id": user}).status_code == 401
        assert client.post("/v1/recommend", json={"user_id": user}, headers={"X-API-Key": "nope"}).status_code == 401
        assert client.post("/v1/recommend", json={"user_id": user}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # liveness needs no key
    mf = Recommender.from_run(train(tiny_cfg, tmp_path / "mf", {"name": "mf"}))
    with Server(create_app(mf)) as client:
        user = next(iter(mf.user_index))
        assert client.post("/v1/recommend", json={"user_id": user, "k": 3}).status_code == 200
        r = client.post("/v1/recommend", json={"user_id": "new", "interactions": [mf.item_vocab[1]]})
        assert r.status_code == 422 and "cannot fold in the new user 'new'" in r.json()["detail"]


def test_serve_cli_refuses_open_binds_without_a_key(sasrec_run, capsys):
    from llmrec.cli import main as cli

    assert cli(["serve", str(sasrec_run), "--host", "0.0.0.0"]) != 0
    assert "not loopback" in capsys.readouterr().err


@needs_ml100k
@pytest.mark.slow
def test_serves_a_movielens_model(tmp_path):
    cfg = from_dict(RunConfig, {"data": {"source": "ml-100k", "cache_dir": str(tmp_path / "c")},
                                "backbone": {"name": "sasrec", "hidden": 32, "n_layers": 1},
                                "train": {"epochs": 1, "out_dir": str(tmp_path / "r"), "progress": False}})
    run(cfg)
    rec = Recommender.from_run(tmp_path / "r")
    with Server(create_app(rec)) as client:
        items = client.post("/v1/recommend", json={"user_id": "196", "k": 10}).json()["items"]
        seen = {rec.item_vocab[i] for i in rec.seen[rec.user_index["196"]]}
        assert len(items) == 10 and not {x["item_id"] for x in items} & seen
        cold = client.post("/v1/recommend", json={"user_id": "someone-new", "k": 5,
                                                   "interactions": ["242", "302", "377"]})
        assert cold.status_code == 200 and len(cold.json()["items"]) == 5


def test_a_slow_client_does_not_block_others(sasrec_run):
    import socket

    rec = Recommender.from_run(sasrec_run)
    user = next(iter(rec.user_index))
    with Server(create_app(rec)) as client:
        slow = socket.create_connection(("127.0.0.1", int(str(client.base_url).rsplit(":", 1)[1])))
        try:  # headers promise 200 bytes; only a few arrive, and the connection stays open
            slow.sendall(b"POST /v1/recommend HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: 200\r\n\r\n{\"user_id\":")
            r = client.post("/v1/recommend", json={"user_id": user, "k": 3}, timeout=10)  # blocked: ReadTimeout
            assert r.status_code == 200 and len(r.json()["items"]) == 3
        finally:
            slow.close()
