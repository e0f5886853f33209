"""Feature matching (aspects = noun-phrase heads of the reference) on a hand-checked fixture and on
real XRec Yelp references, with the real spaCy English model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.eval.aspects import aspects, feature_match, head_nouns
from tests.conftest import XREC, needs_xrec

REFS = ["The user would enjoy this cafe for its strong coffee and friendly baristas.",
        "The user would like the thin crust pizza and cheap beer of this place.",
        "The user enjoys the quiet rooms and the pool of this hotel."] + ["The user would like the place."] * 7


def test_heads_lemmas_and_the_generic_filter():
    assert head_nouns(REFS[:1]) == [{"user", "cafe", "coffee", "barista"}]  # "baristas" -> lemma
    asp = aspects(REFS)
    # "user" (10 of 10 references) and "place" (8 of 10) are generic at max_df 0.1; a word used by
    # one reference never is, even in a sample this small
    assert asp[:4] == [{"cafe", "coffee", "barista"}, {"pizza", "beer"}, {"pool", "hotel", "room"}, set()]


def test_own_and_other_pair_rates_by_hand():
    outs = ["Great coffee here.", "They serve pizzas.", "Nice pool and good coffee.", "ok"] + ["the place"] * 6
    d = np.array([[1, 2], [0, 2], [0, 1]] + [[0, 1]] * 7)
    got = feature_match(outs, REFS, d)
    assert got["own"].tolist() == [1, 1, 1] + [0] * 7  # "pizzas" matches "pizza" through the lemma
    # output 2 names "coffee", an aspect of distractor 0 but not of distractor 1: 1/2
    assert got["other"].tolist() == [0, 0, 0.5] + [0] * 7
    assert got["n_aspects"].tolist() == [3, 2, 3] + [0] * 7
    assert np.isnan(feature_match(outs, REFS)["other"]).all()
    with pytest.raises(ValueError, match="3 outputs for 10 references"):
        feature_match(outs[:3], REFS)


@needs_xrec
def test_real_yelp_references_have_pair_specific_aspects():
    lines = (XREC / "yelp" / "explanations.jsonl").read_text().splitlines()[:200]
    refs = [json.loads(x)["explanation"] for x in lines]
    asp = aspects(refs)
    assert "user" not in set().union(*asp)  # the template's word is generic there
    assert np.mean([len(a) > 0 for a in asp]) > 0.8
    # a reference matches its own aspects, and a shuffled reference matches far less often
    own = feature_match(refs, refs)["own"].mean()
    rolled = np.arange(len(refs)).reshape(-1, 1)[::-1]
    other = feature_match(refs, refs, rolled)["other"].mean()
    assert own > 0.8 and other < own / 2
