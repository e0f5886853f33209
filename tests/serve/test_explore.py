"""The explorer's API (``/v1/users``, ``/v1/users/{id}``, ``/v1/explain/counterfactual``, the
``matches`` of ``/v1/explain``) on a finished tiny pipeline run, through a real uvicorn server."""

from __future__ import annotations

import pytest

from llmrec.eval import faithfulness as fm
from llmrec.serve.app import create_app
from llmrec.serve.explore import RunView
from tests.pipeline.conftest import finished_pipeline, tiny_llm  # noqa: F401  (fixtures)
from tests.serve.test_serve import Server


@pytest.fixture(scope="module")
def view(finished_pipeline):  # noqa: F811
    return RunView.from_pipeline(finished_pipeline)


def test_search_user_view_and_counterfactual(view):
    uid = view.data.user_vocab[0]
    title = view.history(uid)[0]["title"]
    with Server(create_app(view.rec, view.ex, explorer=view)) as client:
        found = client.get("/v1/users", params={"q": uid}).json()["users"]
        assert found[0] == {"user_id": uid, "match": "id"}
        by_title = client.get("/v1/users", params={"q": title.lower()}).json()["users"]
        assert by_title and all(m["match"] == "id" or title.lower() in m["match"].lower() for m in by_title)
        assert uid in {m["user_id"] for m in by_title}
        assert client.get("/v1/users", params={"q": ""}).status_code == 422

        body = client.get(f"/v1/users/{uid}").json()
        sl = view.data.rows(0)
        assert len(body["history"]) == sl.stop - sl.start  # every interaction, latest first
        assert body["history"][0]["item_id"] == view.data.item_vocab[int(view.data.item[sl.stop - 1])]
        assert {h["split"] for h in body["history"]} <= {"train", "valid", "test"}
        assert body["interests"]["status"] in ("ok", "repaired", "fallback", "inherited")
        assert body["interests"]["fallback"] == (body["interests"]["answer"] == "fallback")
        assert [t["position"] for t in body["tokens"]] == view.ex.tok.token_names()
        assert client.get("/v1/users/ghost").status_code == 404

        item = client.post("/v1/recommend", json={"user_id": uid, "k": 1}).json()["items"][0]["item_id"]
        e = client.post("/v1/explain", json={"user_id": uid, "item_id": item, "max_tokens": 6}).json()
        allowed = e["evidence"]["titles"] + e["evidence"]["interests"] + e["evidence"]["glosses"]
        assert e["matches"]["evidence"] == fm.named(e["explanation"], allowed)  # the metrics' own matching
        c = client.post("/v1/explain/counterfactual", json={"user_id": uid, "item_id": item, "max_tokens": 6}).json()
        assert c["user_id"] == uid and c["item_id"] == item and c["title"] == e["title"]
        assert c["donor"]["user_id"] != uid and c["donor"]["item_id"] != item
        donor_ev = view.ex.s.aligner.evidence(view.ex.tok.dense_id("user", c["donor"]["user_id"]),
                                              view.ex.tok.dense_id("item", c["donor"]["item_id"]))
        assert c["evidence"]["text"] == donor_ev.text()  # the control is given the donor's evidence
        again = client.post("/v1/explain/counterfactual", json={"user_id": uid, "item_id": item, "max_tokens": 6})
        assert again.json()["donor"] == c["donor"]  # fixed per pair
        assert client.post("/v1/explain/counterfactual", json={"user_id": "ghost", "item_id": item}).status_code == 404
        assert client.get("/explore").status_code == 200 and "<script src=\"/explore/explore.js\">" in \
            client.get("/explore").text
        assert client.get("/explore/explore.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/explore/secret.py").status_code == 404


def test_explorer_routes_follow_the_api_key(view):
    with Server(create_app(view.rec, view.ex, explorer=view, api_key="k")) as client:
        assert client.get("/v1/users", params={"q": "u"}).status_code == 401
        assert client.get("/v1/users", params={"q": "u"}, headers={"X-API-Key": "k"}).status_code == 200
        assert client.get("/explore").status_code == 200  # the page holds no data; its requests need the key
