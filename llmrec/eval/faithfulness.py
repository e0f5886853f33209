"""Is an explanation about its pair? Metrics that reference overlap (BLEU, BERTScore) cannot show.

- Pair identification: rank a pair's explanation against the reference of the pair and the
  references of K=19 distractor pairs (seeded, same split, sharing neither the user nor the item)
  by sentence-encoder cosine; top-1 and reciprocal rank per pair (chance: 0.05 and 0.18).
- Evidence identification: the same ranking against the pair's evidence text and 19 other pairs'
  evidence texts (llmrec always ranks against the DEFAULT method's evidence for the pair, so
  methods given no evidence are comparable).
- USR, unique-sentence ratio (PETER / PEPLER): distinct generated explanations / all of them.
- Echo: an output holding 8 or more consecutive words of the fixed instruction template (the
  evidence text excluded), per pair.
- Copies evidence: an output holding 6 or more consecutive words of its own evidence text (a
  pasted list of interests or glosses), per pair.
- Hallucinated titles: an output naming a catalogue title (normalised exact match) that is neither
  the target's nor in the pair's evidence, per pair. Only names in the catalogue are detected (XRec
  Yelp names 2,473 of its 14,085 items); titles shorter than two words and six characters are not
  matched (a one-word name such as "Chase" is an ordinary word too).
Each per-pair array is paired across methods, so differences get paired bootstrap intervals.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

K_DISTRACTORS = 19
EVIDENCE_COPY_WORDS = 6  # evidence pieces are short lists (4-6 interests); 8 words would miss a pasted list


def distractors(users: Sequence[int], items: Sequence[int], *, k: int = K_DISTRACTORS, seed: int = 0) -> np.ndarray:
    """(n, k) indices of distractor pairs for each pair: other pairs of the same sample that share
    neither its user nor its item, drawn without replacement (seeded)."""
    users, items = np.asarray(users), np.asarray(items)
    ok = (users[:, None] != users[None, :]) & (items[:, None] != items[None, :])  # (n, n)
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), k), dtype=np.int64)
    for i in range(len(users)):
        cand = np.flatnonzero(ok[i])
        if len(cand) < k:
            raise ValueError(f"pair {i} has only {len(cand)} possible distractors, {k} needed")
        out[i] = rng.choice(cand, k, replace=False)
    return out


def identification(outputs: np.ndarray, targets: np.ndarray, distract: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: 1.0 if its own target is the nearest of 1 + k candidates, and 1 / rank. ``outputs``
    and ``targets`` are (n, d) L2-normalised embeddings; a tie counts against the pair."""
    return _ranked(outputs, targets, targets[distract])


def _ranked(outputs: np.ndarray, own: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 hits and reciprocal ranks of ``own`` (n, d) among itself and ``others`` (n, k, d)."""
    own_s = np.einsum("nd,nd->n", outputs, own)  # (n,)
    other = np.einsum("nd,nkd->nk", outputs, others)  # (n, k)
    rank = 1 + (other >= own_s[:, None]).sum(1)
    return (rank == 1).astype(float), 1.0 / rank


def identify(encoder, outputs: Sequence[str], targets: Sequence[str], distract: np.ndarray) -> dict[str, np.ndarray]:
    emb = encoder.encode(list(outputs) + list(targets))
    top1, rr = identification(emb[:len(outputs)], emb[len(outputs):], distract)
    return {"top1": top1, "rr": rr}


def identify_against(encoder, outputs: Sequence[str], own: Sequence[str], others: Sequence[Sequence[str]]
                     ) -> dict[str, np.ndarray]:
    """:func:`identify` with each pair's own ``k`` distractor texts (``others``: n lists of k) instead
    of indices into the targets: for distractors drawn from outside the generated sample."""
    n, k = len(outputs), len(others[0]) if len(others) else 0
    emb = encoder.encode(list(outputs) + list(own) + [t for row in others for t in row])
    top1, rr = _ranked(emb[:n], emb[n:2 * n], emb[2 * n:].reshape(n, k, -1))
    return {"top1": top1, "rr": rr}


def usr(outputs: Sequence[str]) -> float:
    norm = [" ".join(str(t).lower().split()) for t in outputs]
    return len(set(norm)) / len(norm) if norm else 0.0


def _words(text: str) -> list[str]:
    return re.findall(r"[0-9a-z']+", str(text).lower())


def _holds(text: str, grams: set[tuple[str, ...]], n: int) -> bool:
    w = _words(text)
    return any(tuple(w[i:i + n]) in grams for i in range(len(w) - n + 1))


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def echo(outputs: Sequence[str], template: str, *, n: int = 8) -> np.ndarray:
    """1.0 where an output holds ``n`` consecutive words of ``template`` (the instruction text)."""
    grams = _grams(template, n)
    return np.array([float(_holds(text, grams, n)) for text in outputs])


def copies_evidence(outputs: Sequence[str], evidence: Sequence[str], *, n: int = EVIDENCE_COPY_WORDS) -> np.ndarray:
    """1.0 where an output holds ``n`` consecutive words of its own pair's evidence text: the
    evidence pasted back (a list of interests or glosses) rather than used. Echo misses this: the
    evidence is not part of the fixed instruction."""
    if len(outputs) != len(evidence):
        raise ValueError(f"{len(outputs)} outputs for {len(evidence)} evidence texts")
    return np.array([float(_holds(text, _grams(ev, n), n)) for text, ev in zip(outputs, evidence)])


def _key(title: str) -> str:
    return " ".join(_words(title))


def matchable(title: str) -> bool:
    key = _key(title)
    return len(key.split()) >= 2 or len(key) >= 6


def hallucinated_titles(outputs: Sequence[str], catalogue: Sequence[str], allowed: Sequence[Sequence[str]],
                        targets: Sequence[str]) -> tuple[np.ndarray, list[list[str]]]:
    """Per pair: 1.0 if the output names a catalogue title outside its evidence (``allowed``) other
    than its target; and the names found."""
    keys = sorted({_key(t) for t in catalogue if matchable(t)})
    flags, found = [], []
    for text, ok, target in zip(outputs, allowed, targets):
        padded = f" {_key(text)} "
        skip = {_key(t) for t in ok} | {_key(target)}
        hits = [k for k in keys if k not in skip and f" {k} " in padded]
        # a hit inside a longer allowed name ("Tacos" in "Bob's Tacos") is that name, not a new one
        hits = [h for h in hits if not any(f" {h} " in f" {s} " for s in skip)]
        flags.append(float(bool(hits)))
        found.append(hits)
    return np.array(flags), found


def named(text: str, names: Sequence[str]) -> list[str]:
    """The ``names`` that ``text`` names (normalised match, as :func:`mentions` counts them)."""
    padded = f" {_key(text)} "
    return [n for n in names if _key(n) and f" {_key(n)} " in padded]


def mentions(outputs: Sequence[str], names: Sequence[Sequence[str]]) -> np.ndarray:
    """1.0 where an output names at least one of its pair's ``names`` (normalised match)."""
    return np.array([float(bool(named(text, ns))) for text, ns in zip(outputs, names)])
