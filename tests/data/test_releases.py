"""The research releases in ../shared/data: loaders on slices of the real files, the release split,
the target-only history mask, and the errors bad rows get."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import DataConfig
from llmrec.data.loaders import load_raw
from llmrec.data.prepare import TEST, TRAIN, VALID, prepare
from llmrec.data.sequences import EvalExamples
from llmrec.data.stats import dataset_stats, stats_markdown
from llmrec.errors import ConfigError, DataError
from tests.conftest import BEAUTY, ECOMM, RETAILROCKET, TAOBAO, needs_releases


def head_lines(src: Path, dst: Path, n: int) -> Path:
    """The first n lines of a real file, into the test's tmp folder (never into the repo)."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as f:
        lines = [next(f) for _ in range(n)]
    with (gzip.open if dst.suffix == ".gz" else open)(dst, "wt") as f:
        f.writelines(lines)
    return dst


def first_users(src: Path, dst: Path, n_users: int) -> Path:
    """The rows of users 0..n_users-1 of a real long-format file (any row order), into tmp."""
    with gzip.open(src, "rt") as f, gzip.open(dst, "wt") as out:
        out.write(next(f))
        out.writelines(line for line in f if int(line.split(",", 1)[0]) < n_users)
    return dst


def prep(source: str, path: Path, tmp_path: Path, **kw):
    return prepare(DataConfig(source=source, path=str(path), cache_dir=str(tmp_path / "cache"), **kw),
                   use_cache=False)


def rows_of(data, u: int):
    sl = data.rows(u)
    return data.item[sl], data.behaviors[sl], data.split[sl], data.timestamp[sl]


@needs_releases
def test_retailrocket_counts_match_the_release_readme(tmp_path):
    raw = load_raw(DataConfig(source="retailrocket-cml", path=str(RETAILROCKET)))
    counts = raw.inter.groupby(raw.split)["behaviors"].value_counts().to_dict()
    # README: view 75,374 / cart 12,456 / buy 9,551 train rows, plus 2,174 held-out buys (bits 1/2/4)
    assert counts == {("train", 1): 75_374, ("train", 2): 12_456, ("train", 4): 9_551, ("test", 4): 2_174}
    data = prep("retailrocket-cml", RETAILROCKET, tmp_path)
    stats = dataset_stats(data)
    removed = int(stats["split"]["protocol"].split("other training rows, ")[1].split(" ")[0].replace(",", ""))
    assert stats["interactions"] == len(raw.inter) - removed and removed > 0
    assert (data.n_users, data.n_items) == (2_174, 30_113)
    assert stats["split"]["test"] == 2_174
    # every user has a training buy (README: 2,174 users with >= 1), so every user gets a valid buy
    assert stats["split"]["valid"] == 2_174
    assert any("held-out buy" in c for c in stats["caveats"])
    assert "caveat" in stats_markdown(stats)


@needs_releases
def test_retailrocket_slice_puts_held_out_rows_last_and_masks_only_bought_items(tmp_path):
    path = head_lines(RETAILROCKET / "interactions_long.csv.gz", tmp_path / "interactions_long.csv.gz", 3000)
    data = prep("retailrocket-cml", path, tmp_path)
    buy = 1 << data.behavior_vocab.index("buy")
    for u in range(data.n_users):
        items, beh, split, ts = rows_of(data, u)
        n_test = int((split == TEST).sum())
        if not n_test:  # the slice cut this user's rows
            continue
        assert n_test == 1 and split[-1] == TEST and np.isnan(ts[-1])  # test (timestamp -1) never sorts first
        assert (beh[split != TRAIN] & buy).all()  # only buys are held out
        train_ts = ts[split == TRAIN]
        assert (np.diff(train_ts) >= 0).all()  # training rows stay chronological
        if (split == VALID).any():
            bought = ts[(split == TRAIN) & ((beh & buy) > 0)]
            # valid = the LAST training buy: no remaining training buy is later than it
            assert not len(bought) or bought.max() <= ts[split == VALID][0]
    ex = EvalExamples.build(data, TEST, max_len=50)
    for e, u in enumerate(ex.users):
        items, beh, split, _ = rows_of(data, u)
        before = split < TEST
        hist = set(ex.history[1][ex.history[0][e]:ex.history[0][e + 1]])
        assert hist == set(items[before & ((beh & buy) > 0)])  # viewed-only items stay rankable


@needs_releases
def test_taobao_drops_held_out_views_and_carts_and_picks_a_seeded_valid_buy(tmp_path):
    path = first_users(TAOBAO / "interactions_long.csv.gz", tmp_path / "interactions_long.csv.gz", 200)
    a = prep("taobao-mbcgcn", path, tmp_path)
    b = prep("taobao-mbcgcn", path, tmp_path)
    c = prep("taobao-mbcgcn", path, tmp_path, seed=1)
    raw = load_raw(DataConfig(source="taobao-mbcgcn", path=str(path)))
    held_out_other = int(((raw.split == "test") & (raw.inter["behaviors"].to_numpy() != 4)).sum())
    assert held_out_other == 2 * 200  # each user's held-out view and cart (README)
    assert len(a.item) == len(raw.inter) - held_out_other
    assert "no order" in a.meta["caveats"][0]
    assert "seeded random" in a.meta["split_protocol"]
    valid = lambda d: d.item[d.split == VALID]  # noqa: E731
    assert np.array_equal(valid(a), valid(b)) and not np.array_equal(valid(a), valid(c))
    assert (a.behaviors[a.split != TRAIN] == 4).all()  # bit 2 = buy
    assert ((a.split == TEST).sum(), (a.split == VALID).sum()) == (200, 200)


@needs_releases
def test_alibaba_ecomm_last_buy_day_is_test_and_duplicates_are_counted(tmp_path):
    data = prep("alibaba-ecomm", ECOMM, tmp_path)
    stats = dataset_stats(data)
    assert stats["dropped_rows"] == {"exact duplicate row (same user, item, behaviour, day)": 4_270}
    assert stats["split"]["test"] == 1_409  # README: 1,409 users bought
    assert data.meta["split_protocol"].startswith("llmrec's own split of the log (test: its held-out buy rows)")
    buy = 1 << data.behavior_vocab.index("buy")
    for u in range(0, data.n_users, 37):
        items, beh, split, ts = rows_of(data, u)
        if (split == TEST).any():
            buys = ts[(beh & buy) > 0]
            assert ts[split == TEST][0] == buys.max()  # a buy of the user's last buy day


@needs_releases
def test_amazon_beauty_titles_and_order(tmp_path):
    data = prep("amazon-seqrec", BEAUTY, tmp_path)
    assert (data.n_users, data.n_items, len(data.item)) == (22_332, 12_086, 198_215)
    assert (data.items["title"] != "").all()
    assert not data.items["title"].str.contains("&amp;").any()  # HTML entities decoded
    assert data.meta["split_protocol"].startswith("leave-one-out")
    assert any("identified by title" in c for c in data.meta["caveats"])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_release_split_rules_on_a_hand_made_log(tmp_path):
    # user a: view x, buy y, view z, buy w, held-out buy q and a held-out view r (dropped)
    f = write(tmp_path / "log.csv", "user,item,behavior,timestamp,split\n"
              "a,q,buy,-1,test\na,r,view,-1,test\na,x,view,10,train\na,y,buy,20,train\n"
              "a,z,view,30,train\na,w,buy,25,train\na,w,view,24,train\nb,y,view,5,train\nb,q,buy,-1,test\n")
    data = prep("retailrocket-cml", f, tmp_path)
    a = data.user_vocab.index("a")
    names = [data.item_vocab[i] for i in data.item[data.rows(a)]]
    # time order with valid (the last buy, w) in place; w's view removed like a test pair's; test last
    assert names == ["x", "y", "w", "z", "q"]
    assert "other training rows, 1, removed" in data.meta["split_protocol"]
    assert list(data.split[data.rows(a)]) == [TRAIN, TRAIN, VALID, TRAIN, TEST]
    assert "1 held-out rows of other behaviours dropped" in data.meta["split_protocol"].replace(",", "")
    b = data.user_vocab.index("b")
    assert list(data.split[data.rows(b)]) == [TRAIN, TEST]  # no training buy, so no valid
    ex = EvalExamples.build(data, TEST, max_len=5)
    e = list(ex.users).index(a)
    hist = {data.item_vocab[i] for i in ex.history[1][ex.history[0][e]:ex.history[0][e + 1]]}
    assert hist == {"y", "w"}  # bought items only; viewed x, z stay rankable
    assert [data.item_vocab[i] for i in ex.inputs["item"][e] if i] == ["x", "y", "w", "z"]
    va = EvalExamples.build(data, VALID, max_len=5)
    e = list(va.users).index(a)
    # valid sees only what came before the valid buy: not z, which happened later
    assert [data.item_vocab[i] for i in va.inputs["item"][e] if i] == ["x", "y"]
    assert "leave-one-out" in prep("retailrocket-cml", f, tmp_path, split="loo").meta["split_protocol"]
    g = write(tmp_path / "interactions.csv", "user_id,item_id,timestamp,seq_pos\n1,100,5,0\n1,101,6,1\n")
    with pytest.raises(ConfigError, match="carries no split"):
        prep("amazon-seqrec", g, tmp_path, split="release")


def test_release_bad_rows_name_file_line_and_column(tmp_path):
    f = write(tmp_path / "bad.csv", "user,item,behavior,timestamp,split\na,x,view,1,train\na,y,buy,2,tset\n")
    with pytest.raises(DataError, match=r"bad.csv.*line 3.*split.*'tset'"):
        load_raw(DataConfig(source="retailrocket-cml", path=str(f)))
    raw = load_raw(DataConfig(source="retailrocket-cml", path=str(f), on_bad_rows="skip"))
    assert raw.dropped_rows == {"bad split": 1}
    g = write(tmp_path / "edges.txt", "1\t10\t4\t20190610\n1\t11\t9\t20190611\n")
    with pytest.raises(DataError, match=r"edges.txt.*line 2.*type"):
        load_raw(DataConfig(source="alibaba-ecomm", path=str(g)))
    h = write(tmp_path / "edges2.txt", "1\t10\t4\t2019-06-10\n")
    with pytest.raises(DataError, match=r"line 1.*date.*YYYYMMDD"):
        load_raw(DataConfig(source="alibaba-ecomm", path=str(h)))
    d = tmp_path / "beauty"
    d.mkdir()
    write(d / "interactions.csv", "user_id,item_id,timestamp,seq_pos\n1,100,5,0\n1,101,6,1\n")
    write(d / "items.csv", "item_id,title\n100,Soap &amp; Co\n")
    with pytest.raises(DataError, match=r"line 3.*item '101' has no title"):
        load_raw(DataConfig(source="amazon-seqrec", path=str(d / "interactions.csv")))


@needs_releases
def test_a_model_trained_on_a_release_slice_reports_its_split_and_caveats(tmp_path):
    from llmrec.config import RunConfig, from_dict
    from llmrec.train.run import run

    path = first_users(RETAILROCKET / "interactions_long.csv.gz", tmp_path / "interactions_long.csv.gz", 150)
    cfg = from_dict(RunConfig, {
        "data": {"source": "retailrocket-cml", "path": str(path), "cache_dir": str(tmp_path / "cache")},
        "backbone": {"name": "sasrec", "hidden": 8, "n_layers": 1, "n_heads": 1, "inner": 16, "behaviors": True},
        "train": {"epochs": 1, "batch_size": 32, "out_dir": str(tmp_path / "run"), "progress": False},
        "eval": {"ks": [10]}})
    out = run(cfg)
    assert out["caveats"] and out["protocol"].startswith("the release's own split")
    assert out["test"]["hr@10"] >= 0 and len(np.load(tmp_path / "run" / "test_per_user.npz")["users"]) == 150
    text = (tmp_path / "run" / "results.md").read_text()
    assert "Caveats: RetailRocket (CML/KHGT release): test = the release's one held-out buy per user" in text
