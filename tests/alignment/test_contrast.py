"""The pair-contrastive lever: hinge on the reference's NLL under the pair's own vs another pair's inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.alignment.model import in_batch_donors
from llmrec.alignment.pairs import sample
from llmrec.alignment.train import fit, setup
from llmrec.errors import ConfigError
from tests.alignment.conftest import align_cfg, tiny_backend


def _rows(s):
    rows = sample(s.pairs, "train", 4, 0).reset_index(drop=True)
    users, items = rows["user"].to_numpy().copy(), rows["item"].to_numpy().copy()
    users[1] = users[2]  # row 1's donor (row 2) shares its user: row 1 leaves the term
    items[1] = items[1] if items[1] != items[2] else items[0]
    return rows.assign(user=users, item=items,
                       reference=["the red book", "a cat sat on the mat", "the user", "hello world and it"])


def test_donors_are_the_next_row_sharing_neither_user_nor_item():
    import pandas as pd

    rows = pd.DataFrame({"user": [1, 2, 2, 3], "item": [10, 11, 12, 10]})
    donor, kept = in_batch_donors(rows)
    assert donor.tolist() == [1, 2, 3, 0]
    assert kept.tolist() == [True, False, True, False]  # 1 and 2 share user 2; 3 and 0 share item 10


@pytest.mark.parametrize("variant", ["beat", "evidence"])
def test_contrast_term_matches_a_row_by_row_computation(stage1, tmp_path, variant):
    s = setup(align_cfg(stage1, tmp_path, variant=variant, sar=False, contrast_weight=0.5, contrast_margin=0.3),
              backend=tiny_backend())
    rows = _rows(s)
    out = s.aligner.loss(rows, max_target_tokens=12)
    plain = setup(align_cfg(stage1, tmp_path / "plain", variant=variant, sar=False), backend=tiny_backend())
    base = plain.aligner.loss(rows, max_target_tokens=12)
    assert out["nll"].item() == pytest.approx(base["nll"].item(), rel=1e-6)  # the same main term

    def row_nll(r):  # one pair alone: its reference's token-mean NLL
        one = rows.iloc[[r]]
        return s.aligner._nll(one, s.aligner.targets(list(one["reference"]), 12))[0].item()

    donor, kept = in_batch_donors(rows)
    swapped = rows.copy()
    swapped[["user", "item"]] = rows[["user", "item"]].to_numpy()[donor]
    hinge = []
    for r in np.flatnonzero(kept):
        own = row_nll(r)
        one = swapped.iloc[[r]]
        theirs = s.aligner._nll(one, s.aligner.targets(list(one["reference"]), 12))[0].item()
        hinge.append(max(0.0, 0.3 + own - theirs))
    assert kept.tolist().count(False) >= 1
    assert out["contrast"].item() == pytest.approx(float(np.mean(hinge)), rel=1e-4, abs=1e-6)
    assert out["loss"].item() == pytest.approx(base["loss"].item() + 0.5 * float(np.mean(hinge)), rel=1e-4)


def test_training_with_the_contrast_logs_it_and_moves_the_projection(stage1, tmp_path):
    s = setup(align_cfg(stage1, tmp_path, contrast_weight=1.0, contrast_margin=5.0), backend=tiny_backend())
    before = s.aligner.trainable_state()
    fit(s)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all("contrast" in x and "nll_gap" in x for x in lines)
    assert all(x["contrast"] > 0 for x in lines)  # a 5-nat margin is never met by a tiny model
    after = s.aligner.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in after)


@pytest.mark.parametrize("extra", [{"variant": "constant", "contrast_weight": 1.0},
                                   {"variant": "title", "contrast_weight": 1.0},
                                   {"contrast_weight": -1.0}])
def test_contrast_settings_are_checked(stage1, tmp_path, extra):
    with pytest.raises(ConfigError, match="contrast"):
        setup(align_cfg(stage1, tmp_path, **extra), backend=tiny_backend())


def test_trained_text_profile_reads_the_summaries_trains_and_is_permuted_with_them(stage1, tmp_path):
    from llmrec.alignment.pairs import tokens_of_other_pairs

    s = setup(align_cfg(stage1, tmp_path, variant="profile_trained", contrast_weight=1.0), backend=tiny_backend())
    rows = sample(s.pairs, "train", 4, 0).reset_index(drop=True)
    rows = rows.assign(user_summary=[f"likes thing{k}" for k in range(4)],
                       item_summary=[f"serves dish{k}" for k in range(4)])
    reqs, soft = s.aligner.requests(rows)
    assert soft.shape[1] == 12  # the constant control's 12 tokens
    user = reqs[2][-1]["content"]  # segments: text and soft-token blocks
    text = " ".join(seg for seg in user if isinstance(seg, str))
    assert "likes thing2" in text and "serves dish2" in text
    swapped = tokens_of_other_pairs(rows, seed=0)
    for k in range(4):  # the summaries move with the user and item; title and reference stay
        donor = int(np.flatnonzero(rows["user"].to_numpy() == swapped["user"].iloc[k])[0])
        assert swapped["user_summary"].iloc[k] == f"likes thing{donor}" != rows["user_summary"].iloc[k]
        assert swapped["reference"].iloc[k] == rows["reference"].iloc[k]
    before = s.aligner.trainable_state()
    fit(s)
    after = s.aligner.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in after)
