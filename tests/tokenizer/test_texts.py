"""Training texts, intention parsing, fallbacks and the no-leak guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.data.prepare import prepare
from llmrec.tokenizer.config import load_tokenizer_config
from llmrec.tokenizer.edges import edge_keys, split_edges
from llmrec.tokenizer.texts import category_phrases, entity_phrases, fallback_phrases, parse_phrases, training_pairs
from llmrec.tokenizer.train import build_semantics


def test_parse_phrases_accepts_json_lists_and_rejects_prose():
    assert parse_phrases('["Cheap Beer", "cozy patio."') == ["cheap beer", "cozy patio"]
    assert parse_phrases('Sure: ["a b", "a b", "c"]') == ["a b", "c"]
    for bad in ("The user would enjoy it.", '["x", 3]', '[]', '["one two three four five six seven"]'):
        with pytest.raises(ValueError):
            parse_phrases(bad)


def test_fallback_takes_quoted_phrases_then_clauses():
    assert fallback_phrases('["great food", "relaxing vibe", "', "ignored") == ["great food", "relaxing vibe"]
    text = "The user would enjoy this cafe for its strong coffee, quiet corners and friendly staff."
    assert fallback_phrases("no list here", text) == ["its strong coffee", "quiet corners", "friendly staff"]


def test_training_pairs_are_the_train_split_only(xrec_cfg):
    data = prepare(xrec_cfg)
    pairs = training_pairs(data)
    expl = data.explanations
    assert len(pairs) == (expl["split"] == "train").sum() > 0
    held = expl.loc[expl["split"] != "train"]
    assert not set(zip(held["user"], held["item"])) & set(zip(pairs["user"], pairs["item"]))
    zero = expl.loc[expl["split"] == "zero_shot"]
    assert not set(zero["user"]) & set(pairs["user"]) and not set(zero["item"]) & set(pairs["item"])


def test_entity_phrases_union_over_training_texts_with_provenance():
    import pandas as pd

    pairs = pd.DataFrame({"user": [1, 1], "item": [5, 6], "text": ["a", "b"], "id": ["1:5", "1:6"]})
    results = [{"id": "1:5", "parsed": ["x", "y"], "output": "raw1", "status": "ok", "model": "m", "prompt_hash": "h"},
               {"id": "1:6", "parsed": ["y", "z"], "output": "raw2", "status": "fallback", "model": "m",
                "prompt_hash": "h"},
               {"id": "9:9", "parsed": ["leak"], "output": "r", "status": "ok", "model": "m", "prompt_hash": "h"}]
    recs = entity_phrases(pairs, results)
    assert recs["user"][1]["phrases"] == ["x", "y", "z"]
    assert recs["user"][1]["raw"] == ["raw1", "raw2"] and recs["user"][1]["status"] == ["ok", "fallback"]
    assert recs["item"][6]["phrases"] == ["y", "z"] and 9 not in recs["user"]


def test_semantics_never_read_held_out_edges_or_cold_users(xrec_cfg, tmp_path, encoder):
    cfg = load_tokenizer_config(None, ["train.test_ratio=0.3", "train.holdout_users=0.2"])
    cfg.data = xrec_cfg
    data = prepare(xrec_cfg)
    split = split_edges(data.user, data.item, data.n_users, valid_ratio=0.1, test_ratio=0.3,
                        holdout_users=0.2, seed=0)
    sem = build_semantics(cfg, data, split, encoder)
    train_keys = set(edge_keys(split.train, data.n_items).tolist())
    used = edge_keys(np.stack([sem.macro_users.numpy(), sem.macro_items.numpy()], 1), data.n_items)
    assert len(used) > 0 and set(used.tolist()) <= train_keys
    assert not np.isin(sem.macro_users.numpy(), split.cold_users).any()
    all_pairs = training_pairs(data)
    assert len(used) < len(all_pairs)  # some training pairs had their edge held out
    assert sem.coverage["training_text_pairs"] == len(used)


def test_category_phrases_come_from_item_genres(tiny_cfg):
    data = prepare(tiny_cfg)
    recs = category_phrases(data)
    assert len(recs) == data.n_items
    assert recs[1]["phrases"] and recs[1]["status"] == ["rule"]
