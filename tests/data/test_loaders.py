"""Every loader on small files written in its format, and the errors bad input gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmrec.config import DataConfig
from llmrec.data.loaders import load_raw
from llmrec.data.schema import behavior_names
from llmrec.errors import ConfigError, DataError


def cfg(source: str, path: Path, **kw) -> DataConfig:
    return DataConfig(source=source, path=str(path), **kw)


def test_recbole_atomic(tiny_dir):
    raw = load_raw(cfg("recbole", tiny_dir))
    assert len(raw.inter) == 12 * 10
    assert raw.inter["user"].iloc[0] == "u1"
    assert raw.has_timestamp and raw.inter["rating"].between(1, 5).all()
    assert raw.items is not None and raw.items["categories"].iloc[0] == "Drama|Comedy"
    assert raw.behavior_vocab == ["rated"]


def test_movielens_100k_raw(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\t11\t3\t90\n2\t10\t1\t95\n")
    genres = ["0"] * 19
    genres[5] = "1"
    (tmp_path / "u.item").write_text(f"10|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(genres)}\n"
                                     f"11|Heat (1995)|01-Jan-1995||http://y|{'|'.join(genres)}\n")
    raw = load_raw(cfg("movielens", tmp_path))
    assert list(raw.inter["item"]) == ["10", "11", "10"]
    assert list(raw.inter["timestamp"]) == [100, 90, 95]
    assert raw.items.set_index("item").loc["10", "categories"] == "Comedy"


def test_movielens_1m_raw_and_bad_line(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::10::5::100\n1::11::4::101\n")
    (tmp_path / "movies.dat").write_text("10::Heat (1995)::Action|Crime\n11::Up (2009)::Animation\n")
    raw = load_raw(cfg("movielens", tmp_path))
    assert raw.items.set_index("item").loc["10", "categories"] == "Action|Crime"
    (tmp_path / "ratings.dat").write_text("1::10::5::100\n1::11::4\n")
    with pytest.raises(DataError, match=r"ratings.dat line 2: expected 4"):
        load_raw(cfg("movielens", tmp_path))


def test_amazon_2014_and_2018(tmp_path):
    reviews = tmp_path / "reviews_Books.json"
    reviews.write_text("\n".join(json.dumps(r) for r in [
        {"reviewerID": "A", "asin": "B1", "overall": 5.0, "unixReviewTime": 10,
         "reviewText": "great", "summary": "Nice"},
        {"reviewerID": "A", "asin": "B2", "overall": 2.0, "unixReviewTime": 20, "reviewText": "meh"},
    ]) + "\n")
    # 2014 metadata: python literals, nested categories
    (tmp_path / "meta_Books.json").write_text(
        "{'asin': 'B1', 'title': 'One', 'categories': [['Books', 'Fiction']]}\n"
        "{'asin': 'B2', 'title': 'Two', 'categories': [['Books']]}\n")
    raw = load_raw(cfg("amazon", tmp_path))
    assert list(raw.inter["rating"]) == [5.0, 2.0]
    assert raw.inter["review"].iloc[0] == "Nice. great"
    assert raw.items.set_index("item").loc["B1", "categories"] == "Books|Fiction"
    # 2018 metadata: 'category' list
    (tmp_path / "meta_Books.json").write_text(json.dumps({"asin": "B1", "title": "One",
                                                          "category": ["Books", "Poetry"]}) + "\n")
    raw = load_raw(cfg("amazon", tmp_path))
    assert raw.items.set_index("item").loc["B1", "categories"] == "Books|Poetry"


def test_amazon_bad_json_names_line(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"reviewerID": "A", "asin": "B1"}\n{"reviewerID": "A", "asin"\n')
    with pytest.raises(DataError, match=r"reviews.jsonl line 2: invalid JSON"):
        load_raw(cfg("amazon", path))
    path.write_text('{"reviewerID": "A", "asin": "B1"}\n{"reviewerID": "A"}\n')
    with pytest.raises(DataError, match=r"line 2: column 'asin' missing field"):
        load_raw(cfg("amazon", path))


def test_xrec_folder(tmp_path):
    (tmp_path / "interactions.csv").write_text("user,item\n0,0\n0,1\n1,1\n")
    (tmp_path / "explanations.jsonl").write_text(json.dumps(
        {"uid": 0, "iid": 1, "title": "Cafe", "user_summary": "u", "item_summary": "i",
         "explanation": "Because."}) + "\n")
    raw = load_raw(cfg("xrec", tmp_path))
    assert not raw.has_timestamp
    assert raw.explanations.iloc[0].to_dict()["explanation"] == "Because."
    assert raw.items.iloc[0]["title"] == "Cafe"


def test_taobao(tmp_path):
    path = tmp_path / "UserBehavior.csv"
    path.write_text("1,10,7,pv,100\n1,10,7,buy,200\n2,11,8,cart,150\n")
    raw = load_raw(cfg("taobao", path))
    assert raw.behavior_vocab == ["pv", "fav", "cart", "buy"] and raw.target_behavior == "buy"
    assert [behavior_names(m, raw.behavior_vocab) for m in raw.inter["behaviors"]] == [["pv"], ["buy"], ["cart"]]
    path.write_text("1,10,7,pv,100\n1,10,7,like,200\n")
    with pytest.raises(DataError, match=r"UserBehavior.csv line 2: column 'behavior' behaviour 'like'"):
        load_raw(cfg("taobao", path))
    raw = load_raw(cfg("taobao", path, on_bad_rows="skip"))
    assert len(raw.inter) == 1 and raw.dropped_rows == {"unknown behavior": 1}


def test_tmall(tmp_path):
    path = tmp_path / "user_log_format1.csv"
    path.write_text("user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n"
                    "1,10,5,3,4,0829,0\n1,10,5,3,4,1111,2\n")
    raw = load_raw(cfg("tmall", path))
    names = [behavior_names(m, raw.behavior_vocab) for m in raw.inter["behaviors"]]
    assert names == [["click"], ["purchase"]] and raw.target_behavior == "purchase"
    assert raw.inter["timestamp"].iloc[1] > raw.inter["timestamp"].iloc[0]
    path.write_text("user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n1,10,5,3,4,1399,0\n")
    with pytest.raises(DataError, match=r"line 2: column 'time_stamp' is '1399', expected mmdd"):
        load_raw(cfg("tmall", path))


def test_retailrocket(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("timestamp,visitorid,event,itemid,transactionid\n"
                    "1433221332117,257597,view,355908,\n1433224214164,257597,transaction,355908,42\n")
    raw = load_raw(cfg("retailrocket", path))
    assert raw.inter["timestamp"].iloc[0] == pytest.approx(1433221332.117)
    assert raw.target_behavior == "transaction"
    path.write_text("timestamp,visitorid,event,itemid,transactionid\nabc,257597,view,355908,\n")
    with pytest.raises(DataError, match=r"events.csv line 2: column 'timestamp' is 'abc', expected an integer"):
        load_raw(cfg("retailrocket", path))


def test_tenrec(tmp_path):
    path = tmp_path / "ctr_data.csv"
    path.write_text("user_id,item_id,click,follow,like,share,video_category\n"
                    "1,10,1,0,1,0,2\n1,11,0,0,0,0,2\n2,10,1,1,0,0,3\n")
    raw = load_raw(cfg("tenrec", path))
    assert len(raw.inter) == 2 and raw.dropped_rows == {"no behaviour flag set": 1}
    assert behavior_names(int(raw.inter["behaviors"].iloc[0]), raw.behavior_vocab) == ["click", "like"]
    path.write_text("user_id,item_id,click,follow,like,share\n1,10,1,0,2,0\n")
    with pytest.raises(DataError, match=r"line 2: column 'like' is 2, expected 0 or 1"):
        load_raw(cfg("tenrec", path))


def test_generic_table_csv_and_parquet(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("uid,iid,when,acts,ctx\n1,10,2024-01-01 10:00,click|cart,home\n1,11,2024-01-02,buy,work\n")
    c = cfg("table", path, columns={"user": "uid", "item": "iid", "timestamp": "when",
                                    "behaviors": "acts", "scene": "ctx"},
            behaviors=["click", "cart", "buy"], target_behavior="buy")
    raw = load_raw(c)
    assert behavior_names(int(raw.inter["behaviors"].iloc[0]), raw.behavior_vocab) == ["click", "cart"]
    assert list(raw.inter["scene"]) == ["home", "work"]
    assert raw.inter["timestamp"].iloc[0] == pytest.approx(1704103200)
    import pandas as pd

    pq = tmp_path / "log.parquet"
    pd.read_csv(path).to_parquet(pq)
    raw2 = load_raw(cfg("table", pq, columns=c.columns, behaviors=c.behaviors, target_behavior="buy"))
    assert raw2.inter["behaviors"].tolist() == raw.inter["behaviors"].tolist()


def test_bad_inputs_name_file_line_and_column(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,timestamp\n1,2,100\n1,3,abc\n")
    c = cfg("table", path, columns={"timestamp": "timestamp"})
    with pytest.raises(DataError, match=r"ratings.csv line 3: column 'timestamp' is 'abc', expected"):
        load_raw(c)
    raw = load_raw(cfg("table", path, columns={"timestamp": "timestamp"}, on_bad_rows="skip"))
    assert len(raw.inter) == 1 and raw.dropped_rows == {"bad timestamp": 1}
    # wrong number of fields
    path.write_text("user,item\n1,2\n1,3,4\n")
    with pytest.raises(DataError, match=r"ratings.csv line 3: malformed row"):
        load_raw(cfg("table", path))
    raw = load_raw(cfg("table", path, on_bad_rows="skip"))
    assert len(raw.inter) == 1 and raw.dropped_rows == {"wrong number of fields": 1}
    # missing column, empty file, empty id
    path.write_text("user,product\n1,2\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['item'\]"):
        load_raw(cfg("table", path))
    path.write_text("")
    with pytest.raises(DataError, match="ratings.csv: file is empty"):
        load_raw(cfg("table", path))
    path.write_text("user,item\n1,2\n,3\n")
    with pytest.raises(DataError, match=r"line 3: column 'user' is empty"):
        load_raw(cfg("table", path))


def test_unknown_source_and_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="unknown source"):
        load_raw(DataConfig(source="nope", path="x"))
    with pytest.raises(ConfigError, match="data.path is required"):
        load_raw(DataConfig(source="taobao"))
