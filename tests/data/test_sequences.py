"""Training windows use every training interaction; evaluation inputs never see held-out items."""

from __future__ import annotations

import dataclasses

import numpy as np

from llmrec.data.prepare import TEST, TRAIN, VALID, prepare
from llmrec.data.sequences import EvalExamples, TrainWindows


def test_windows_cover_every_training_target(tiny_cfg):
    d = prepare(dataclasses.replace(tiny_cfg, max_len=3), use_cache=False)
    w = TrainWindows.build(d, max_len=3)
    batch = w.batch(np.arange(len(w)))
    for u in range(d.n_users):
        train_items = d.item[d.rows(u)][d.split[d.rows(u)] == TRAIN]
        mine = batch["targets"][batch["users"] == u]
        got = sorted(mine[mine > 0].tolist())
        # every training item but the first is a target exactly once (no overlap at stride = max_len)
        assert got == sorted(train_items[1:].tolist())
    # targets are the inputs shifted by one
    row = w.windows["item"][0]
    assert np.array_equal(batch["items"][0].numpy(), row[:-1])
    assert np.array_equal(batch["targets"][0][batch["items"][0] > 0].numpy(), row[1:][row[:-1] > 0])


def test_overlapping_windows_with_stride(tiny_cfg):
    d = prepare(tiny_cfg, use_cache=False)
    assert len(TrainWindows.build(d, max_len=4, stride=2)) > len(TrainWindows.build(d, max_len=4))


def test_eval_examples_hold_out_targets(tiny_cfg):
    d = prepare(tiny_cfg, use_cache=False)
    valid = EvalExamples.build(d, VALID, max_len=8)
    test = EvalExamples.build(d, TEST, max_len=8)
    assert len(valid) == len(test) == d.n_users
    for e, u in enumerate(test.users):
        rows = d.item[d.rows(u)]
        labels = d.split[d.rows(u)]
        hist = test.history[1][test.history[0][e]:test.history[0][e + 1]]
        targ = test.targets[1][test.targets[0][e]:test.targets[0][e + 1]]
        assert targ.tolist() == rows[labels == TEST].tolist()
        assert set(hist) == set(rows[labels != TEST])  # test input includes the valid item
        inputs = test.inputs["item"][e]
        assert inputs[-1] == rows[labels == VALID][0]
        assert not set(inputs[inputs > 0]) & set(targ)
        vh = valid.history[1][valid.history[0][e]:valid.history[0][e + 1]]
        assert set(vh) == set(rows[labels == TRAIN])  # validation never sees the test item
        assert valid.inputs["item"][e][-1] == rows[labels == TRAIN][-1]
