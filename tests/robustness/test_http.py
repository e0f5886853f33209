"""Bad requests at the HTTP API: short JSON errors that never echo the input, hard body limits,
and an API page that needs no CDN (the app's test client, as the issue asks)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from llmrec.serve.app import create_app
from llmrec.serve.recommender import Recommender
from tests.serve.test_serve import train


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tests.conftest import write_atomic_dataset
    from llmrec.config import DataConfig

    root = tmp_path_factory.mktemp("http")
    cfg = DataConfig(source="recbole", path=str(write_atomic_dataset(root / "tiny")), max_len=8,
                     cache_dir=str(root / "cache"))
    run = train(cfg, root / "sasrec", {"name": "sasrec", "n_layers": 1, "inner": 32})
    with TestClient(create_app(Recommender.from_run(run), max_body_bytes=64 * 1024)) as c:
        yield c


def test_megabyte_user_id_is_refused_without_echo(client):
    huge = "u" * (1 << 20)
    r = client.post("/v1/recommend", json={"user_id": huge})
    assert r.status_code == 413
    assert len(r.content) < 200 and huge[:1000] not in r.text


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():  # no content-length header: the size is only known while streaming
        yield b'{"user_id": "'
        for _ in range(100):
            yield b"x" * 4096
        yield b'"}'

    r = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "over 65536 bytes" in r.json()["detail"]


def test_422_names_the_field_and_does_not_echo_input(client):
    long_id = "v" * 5000  # over the 256-character limit, under the body limit
    r = client.post("/v1/recommend", json={"user_id": long_id, "k": 10})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "user_id"] and "256" in detail[0]["msg"]
    assert long_id[:300] not in r.text and len(r.content) < 400
    r = client.post("/v1/recommend", json={"user_id": "u1", "k": "many" * 500})
    assert r.status_code == 422 and "many" not in r.text and r.json()["detail"][0]["loc"] == ["body", "k"]


def test_docs_page_needs_no_cdn(client):
    r = client.get("/docs")
    assert r.status_code == 200
    page = r.text
    assert "/v1/recommend" in page and "user_id" in page and "/openapi.json" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/v1/recommend"]
