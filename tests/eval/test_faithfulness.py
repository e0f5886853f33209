"""Faithfulness metrics on hand-computed fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.eval import faithfulness as fm


def unit(*rows):
    a = np.asarray(rows, dtype=float)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_identification_ranks_own_target_against_distractors():
    targets = unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    outputs = unit([1, 0.1, 0], [0.2, 0, 1], [0, 0, 1])  # pair 0 right, pair 1 nearest pair 2's, pair 2 right
    distract = np.array([[1, 2], [0, 2], [0, 1]])
    top1, rr = fm.identification(outputs, targets, distract)
    assert top1.tolist() == [1.0, 0.0, 1.0]
    # pair 1: own cosine 0, pair 2's 0.98, pair 0's 0.196 -> rank 3
    assert rr.tolist() == pytest.approx([1.0, 1 / 3, 1.0])


def test_a_template_scores_chance():
    rng = np.random.default_rng(0)
    targets = unit(*rng.normal(size=(200, 16)))
    same = np.repeat(unit(rng.normal(size=16)), 200, axis=0)  # one text for every pair
    d = fm.distractors(np.arange(200), np.arange(200), seed=1)
    top1, rr = fm.identification(same, targets, d)
    assert abs(top1.mean() - 0.05) < 0.04 and abs(rr.mean() - 0.18) < 0.05


def test_distractors_share_neither_user_nor_item():
    users = np.array([0, 0, 1, 2, 3, 4, 5])
    items = np.array([9, 8, 9, 7, 6, 5, 4])
    d = fm.distractors(users, items, k=3, seed=0)
    for i, row in enumerate(d):
        assert len(set(row)) == 3 and i not in row
        assert all(users[j] != users[i] and items[j] != items[i] for j in row)
    assert (fm.distractors(users, items, k=3, seed=0) == d).all()
    with pytest.raises(ValueError, match="possible distractors"):
        fm.distractors(users, items, k=6)


def test_usr_echo_and_mentions():
    assert fm.usr(["A nice place.", "a  nice place.", "Other."]) == pytest.approx(2 / 3)
    template = "In one or two sentences, tell the user why they would like the recommended item"
    outs = ["tell the user why they would like the recommended item because tacos",  # 10 words in a row
            "the user would like the tacos",                                          # 4 in a row: no echo
            "In one or two sentences tell the user"]                                   # 8 words: echo
    assert fm.echo(outs, template).tolist() == [1.0, 0.0, 1.0]
    assert fm.mentions(["Loved Bob's Tacos!", "nothing"], [["bob's tacos"], ["x"]]).tolist() == [1.0, 0.0]


def test_copies_evidence_counts_a_pasted_list_of_its_own_evidence_only():
    ev = ["liked before: Bean; Evita | interests: trail running, camping gear, outdoor sports, jurassic park",
          "liked before: Heat | interests: jazz, vinyl records, late night diners"]
    outs = ["The user enjoyed the trail running, camping gear, outdoor sports, and Evita.",  # 6 words in a row
            "The user enjoyed the trail running, camping gear, outdoor sports."]  # pair 0's list, not pair 1's
    assert fm.copies_evidence(outs, ev).tolist() == [1.0, 0.0]
    assert fm.copies_evidence(outs[:1], ev[:1], n=7).tolist() == [0.0]  # "and" breaks the run at 6
    with pytest.raises(ValueError, match="2 outputs for 1 evidence texts"):
        fm.copies_evidence(outs, ev[:1])


def test_hallucinated_titles():
    catalogue = ["Bob's Tacos", "Sushi Zen", "Chase", "Green Garden Cafe", "Tacos"]
    outs = ["Like Bob's Tacos, Sushi Zen is great",  # Sushi Zen is the target: fine
            "You enjoyed Green Garden Cafe",          # not in its evidence: hallucinated
            "Chase the flavour at Bob's Tacos"]       # 'Chase' too short to match; Bob's Tacos in evidence
    flags, found = fm.hallucinated_titles(outs, catalogue, [["Bob's Tacos"], ["Bob's Tacos"], ["Bob's Tacos"]],
                                          ["Sushi Zen", "Sushi Zen", "Pho 1"])
    assert flags.tolist() == [0.0, 1.0, 0.0]
    assert found[1] == ["green garden cafe"]


def test_identify_against_own_distractor_lists():
    """Hand-made unit vectors: pair 0's output is nearest its own text (rank 1); pair 1's output is
    nearer one of its two distractors than its own text (rank 2); a tie counts against the pair."""
    import numpy as np

    from llmrec.eval.faithfulness import identify_against

    vec = {"o0": [1, 0], "o1": [0, 1], "t0": [1, 0], "t1": [0.6, 0.8], "a": [0, 1], "b": [1, 0], "c": [0.8, 0.6],
           "d": [1, 0]}

    class Enc:
        def encode(self, texts):
            return np.array([vec[t] for t in texts], dtype=float)

    out = identify_against(Enc(), ["o0", "o1"], ["t0", "t1"], [["a", "c"], ["a", "b"]])
    assert out["top1"].tolist() == [1.0, 0.0]
    assert out["rr"].tolist() == [1.0, 0.5]
    tie = identify_against(Enc(), ["o0"], ["t0"], [["d", "a"]])  # "d" equals the own text
    assert tie["top1"].tolist() == [0.0] and tie["rr"].tolist() == [0.5]
