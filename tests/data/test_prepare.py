"""Preprocessing, splits, cache, explanation splits and derived signals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from llmrec.config import DataConfig
from llmrec.data.derive import behaviors_from_ratings, scenes_from_time
from llmrec.data.explanations import split_explanations
from llmrec.data.prepare import TEST, TRAIN, VALID, Prepared, k_core, prepare, prepare_raw
from llmrec.data.schema import RawData, canonical_frame


def raw_from(rows, **kw) -> RawData:
    users, items, ts = zip(*rows)
    inter = canonical_frame(len(rows), user=np.array(users), item=np.array(items),
                            timestamp=np.array(ts, dtype=float))
    return RawData(name="t", inter=inter, behavior_vocab=["interact"], target_behavior="interact", **kw)


def test_chronological_order_ties_by_input_order_and_remap():
    # user b's rows arrive out of time order; a's two rows at t=5 keep input order (y then x)
    raw = raw_from([("b", "z", 3), ("a", "y", 5), ("b", "x", 1), ("a", "x", 5), ("a", "z", 1)])
    d = prepare_raw(raw, DataConfig(split="loo"))
    assert d.user_vocab == ["a", "b"] and d.item_vocab == ["[PAD]", "x", "y", "z"]
    assert [d.item_vocab[i] for i in d.item[d.rows(0)]] == ["z", "y", "x"]
    assert [d.item_vocab[i] for i in d.item[d.rows(1)]] == ["x", "z"]
    # a has 3 interactions: last test, second last valid; b has 2: train only
    assert d.split[d.rows(0)].tolist() == [TRAIN, VALID, TEST]
    assert d.split[d.rows(1)].tolist() == [TRAIN, TRAIN]


def test_numeric_ids_sort_numerically():
    raw = raw_from([("10", "2", 1), ("9", "10", 2), ("9", "2", 3)])
    d = prepare_raw(raw, DataConfig())
    assert d.user_vocab == ["9", "10"] and d.item_vocab[1:] == ["2", "10"]


def test_dedup_merges_behaviour_sets():
    inter = canonical_frame(3, user=np.array(["a", "a", "a"]), item=np.array(["x", "x", "y"]),
                            timestamp=np.array([1.0, 2.0, 3.0]), behaviors=np.array([1, 4, 2]))
    raw = RawData(name="t", inter=inter, behavior_vocab=["click", "cart", "buy"], target_behavior="buy")
    d = prepare_raw(raw, DataConfig(dedup="first", split="random"))
    assert d.item.tolist() == [1, 2] and d.behaviors.tolist() == [5, 2]
    d = prepare_raw(raw, DataConfig(dedup="last", split="random"))
    assert d.item.tolist() == [1, 2] and d.timestamp.tolist() == [2.0, 3.0]
    d = prepare_raw(raw, DataConfig(keep_behaviors="target", split="random"))
    assert d.item_vocab == ["[PAD]", "x"] and d.timestamp.tolist() == [2.0]


def test_k_core_is_iterated_until_stable():
    inter = pd.DataFrame({"user": list("aaabbc"), "item": list("xyzxyx")})
    # 2-core: c has 1 row -> dropped; then z has 1 row -> dropped; a keeps x, y
    out = k_core(inter, 2, 2)
    assert sorted(zip(out.user, out.item)) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]


def test_temporal_and_random_splits(tiny_cfg):
    d = prepare(dataclasses.replace(tiny_cfg, split="temporal", valid_ratio=0.2, test_ratio=0.2),
                use_cache=False)
    cut_train = d.timestamp[d.split == TRAIN].max()
    assert cut_train < d.timestamp[d.split == VALID].min()
    assert d.timestamp[d.split == VALID].max() < d.timestamp[d.split == TEST].min()
    assert (d.split == TEST).mean() == pytest.approx(0.2, abs=0.02)
    r1 = prepare(dataclasses.replace(tiny_cfg, split="random", seed=3), use_cache=False)
    r2 = prepare(dataclasses.replace(tiny_cfg, split="random", seed=3), use_cache=False)
    r3 = prepare(dataclasses.replace(tiny_cfg, split="random", seed=4), use_cache=False)
    assert np.array_equal(r1.split, r2.split) and not np.array_equal(r1.split, r3.split)
    assert "random hold-out" in r1.meta["split_protocol"]
    for u in range(r1.n_users):
        assert (r1.split[r1.rows(u)] == TEST).sum() == 1  # 10 per user x 0.1


def test_auto_split_uses_random_without_timestamps():
    raw = raw_from([("a", "x", 1), ("a", "y", 2), ("a", "z", 3)])
    raw.inter["timestamp"] = np.nan
    d = prepare_raw(raw, DataConfig())
    assert "random hold-out" in d.meta["split_protocol"]


def test_cache_hit_and_invalidation(tiny_cfg, tiny_dir):
    d1 = prepare(tiny_cfg)
    folders = list((tiny_dir.parent / "cache").iterdir())
    assert len(folders) == 1 and (folders[0] / "meta.json").exists()
    d2 = prepare(tiny_cfg)
    assert np.array_equal(d1.item, d2.item) and d1.item_vocab == d2.item_vocab
    assert d2.items.loc[1, "title"] == d1.items.loc[1, "title"]
    prepare(dataclasses.replace(tiny_cfg, min_user_inter=5))  # another config -> another entry
    inter = tiny_dir / "tiny.inter"
    inter.write_text(inter.read_text() + "u1\ti1\t3\t99999999\n")  # source changed -> new entry
    d3 = prepare(tiny_cfg)
    assert len(d3.item) == len(d1.item) + 1
    assert len(list((tiny_dir.parent / "cache").iterdir())) == 3


def test_a_cache_another_process_saved_first_stays_and_ours_is_dropped(tiny_cfg, tiny_dir, monkeypatch):
    # two torchrun ranks (or two parallel ablation runs) preparing one cache entry: the second to
    # finish used to swap the first one's folder out from under its readers, or fail (ENOTEMPTY)
    # when the first landed between its existence check and its rename
    import llmrec.data.prepare as prep

    real = prep.prepare_raw
    cache = tiny_dir.parent / "cache"
    folder = prep.cache_folder(tiny_cfg)
    assert folder.parent == cache

    def another_process_finishes_first(raw, cfg):
        data = real(raw, cfg)
        dataclasses.replace(data, meta={**data.meta, "writer": "other"}).save(folder)
        return data

    monkeypatch.setattr(prep, "prepare_raw", another_process_finishes_first)
    d = prepare(tiny_cfg)
    assert "writer" not in d.meta  # this process keeps what it computed
    assert [p.name for p in cache.iterdir()] == [folder.name]  # our temporary is gone
    assert Prepared.load(folder).meta["writer"] == "other"  # the folder that landed first stays
    d.save(folder)  # a plain save still replaces
    assert "writer" not in Prepared.load(folder).meta


def test_ensure_cached_fills_a_missing_entry_once_and_never_loads_it(tiny_cfg, monkeypatch):
    # the torchrun engine's parent fills the cache for its ranks; loading a big dataset there only
    # to drop it cost memory and time
    import llmrec.data.prepare as prep

    calls = []
    real = prep.prepare_raw
    monkeypatch.setattr(prep, "prepare_raw", lambda raw, cfg: calls.append(1) or real(raw, cfg))
    monkeypatch.setattr(Prepared, "load", classmethod(lambda cls, folder: pytest.fail("loaded " + str(folder))))
    folder = prep.ensure_cached(tiny_cfg)
    assert folder == prep.cache_folder(tiny_cfg) and (folder / "meta.json").exists()
    assert prep.ensure_cached(tiny_cfg) == folder
    assert calls == [1]


def test_saved_dataset_round_trips(tmp_path, tiny_cfg):
    d = prepare(tiny_cfg, use_cache=False)
    d.save(tmp_path / "x")
    back = Prepared.load(tmp_path / "x")
    for f in ("user", "item", "timestamp", "behaviors", "split", "offsets"):
        assert np.array_equal(getattr(d, f), getattr(back, f))
    assert back.meta["split_protocol"] == d.meta["split_protocol"]


def test_derived_signals_are_labelled(tiny_cfg):
    d = prepare(dataclasses.replace(tiny_cfg, derive_behaviors=True, derive_scenes="weekday"),
                use_cache=False)
    assert d.behavior_vocab == ["rated", "liked", "disliked"]
    assert any("derived from ratings" in x for x in d.meta["derived"])
    assert any("scenes derived from time" in x for x in d.meta["derived"])
    assert d.scene.min() >= 1


def test_derivation_rules_by_hand():
    assert behaviors_from_ratings(np.array([5, 4, 3, 2, 1])).tolist() == [3, 3, 1, 5, 5]
    # 1970-01-01 00:00 UTC was a Thursday, 13:00 is afternoon
    assert scenes_from_time(np.array([13 * 3600.0]), "daypart").tolist() == ["afternoon"]
    assert scenes_from_time(np.array([0.0, 86400.0 * 3]), "weekday").tolist() == ["Thu", "Sun"]


def test_explanation_split_has_no_zero_shot_leakage():
    rng = np.random.default_rng(0)
    expl = pd.DataFrame({"user": rng.integers(0, 200, 1000), "item": rng.integers(0, 300, 1000),
                         "explanation": "x"}).drop_duplicates(["user", "item"])
    s = split_explanations(expl, seed=1, valid_ratio=0.1, test_ratio=0.1, zero_shot_ratio=0.1)
    zero = s[s.split == "zero_shot"]
    text_splits = s[s.split.isin(["train", "valid", "test"])]
    assert len(zero) > 0 and (s.split == "train").sum() > 0.5 * len(s)
    assert not set(zero.user) & set(text_splits.user)
    assert not set(zero.item) & set(text_splits.item)
    again = split_explanations(expl, seed=1, valid_ratio=0.1, test_ratio=0.1, zero_shot_ratio=0.1)
    assert s.split.tolist() == again.split.tolist()


def test_stats_count_held_out_items_the_user_already_had():
    from llmrec.data.stats import dataset_stats, stats_markdown

    # loo: a = x, y, x (test x: seen in training), valid y (not seen before); b = z, y, w: test w, valid y unseen
    raw = raw_from([("a", "x", 1), ("a", "y", 2), ("a", "x", 3), ("a", "q", 0),
                    ("b", "z", 1), ("b", "y", 2), ("b", "w", 3)])
    d = prepare_raw(raw, DataConfig(split="loo"))
    stats = dataset_stats(d)
    assert stats["held_out_seen"] == {"valid": 0.0, "test": 0.5}
    assert "| held-out items the user already had in training (any behaviour) | valid 0.0%, test 50.0% |" \
        in stats_markdown(stats)
