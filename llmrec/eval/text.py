"""Text metrics for explanations, per pair where they decompose, with corpus BLEU kept as
per-sentence sufficient statistics so that paired bootstrap can resample it exactly.

- BLEU-1 / BLEU-4: sacrebleu corpus BLEU on lower-cased text with sacrebleu's ``13a`` word
  tokenizer (its default: words and punctuation split), default ``exp`` smoothing, reported in
  [0, 1]. BLEU-1 = unigram precision with brevity penalty (max_ngram_order=1).
- ROUGE-L: rouge-score F-measure per pair (its default tokenizer, no stemming), averaged.
- BERTScore F1: bert-score with the local MiniLM (all 6 layers, i.e. num_layers=6), no idf, no
  baseline rescaling (no baseline file exists for MiniLM); not comparable to RoBERTa-large figures.
- LM score (BARTScore-style): mean token log-likelihood of one text given the other under ONE fixed
  scorer LM for every method: ``lm_ref_to_gen`` = log p(generated | reference) (BARTScore's
  precision direction), ``lm_gen_to_ref`` = log p(reference | generated) (recall), ``lm_score`` =
  their mean (BARTScore's F form uses the harmonic mean of probabilities; the mean of log-likelihoods
  is used here and named so).
- distinct-1/2: unique n-grams / all n-grams over a method's generations (corpus level).
- grounding: share of explanations that mention the item's name or one of the user's or the
  item's intention phrases (case-insensitive substring match).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

BLEU_TOKENIZER = "13a"


@lru_cache(maxsize=4)
def _bleu(order: int):
    from sacrebleu.metrics import BLEU

    return BLEU(lowercase=True, tokenize=BLEU_TOKENIZER, max_ngram_order=order)


def bleu_stats(hyps: Sequence[str], refs: Sequence[str], order: int) -> np.ndarray:
    """(n, 2 + 2*order) per-sentence statistics: hyp len, ref len, matches per order, totals per
    order. Summing rows over any subset and scoring with :func:`bleu_from_stats` gives that
    subset's corpus BLEU (sacrebleu's own paired bootstrap does the same)."""
    return np.asarray(_bleu(order)._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.int64)


def bleu_from_stats(stats: np.ndarray, order: int) -> float:
    """Corpus BLEU in [0, 1] from summed statistics."""
    s = [int(x) for x in stats]
    return _bleu(order)._compute_score_from_stats(s).score / 100.0


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], order: int) -> float:
    return bleu_from_stats(bleu_stats(hyps, refs, order).sum(0), order)


def rouge_l(hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return np.array([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)])


@lru_cache(maxsize=2)
def _bert_scorer(model: str, device: str):
    import os

    from bert_score import BERTScorer

    from llmrec.llm.catalog import CATALOG, resolve

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = str(resolve(model)) if model in CATALOG else model
    return BERTScorer(model_type=path, num_layers=6, idf=False, rescale_with_baseline=False, device=device)


def bert_score_f1(hyps: Sequence[str], refs: Sequence[str], *, model: str = "minilm-l6", device: str = "cpu",
                  batch_size: int = 64) -> np.ndarray:
    """BERTScore F1 per pair; a blank explanation or reference scores 0 (it has no tokens to match,
    and bert-score's own empty-text path calls a tokenizer method transformers 5 removed)."""
    f1 = np.zeros(len(hyps))
    keep = [i for i, (h, r) in enumerate(zip(hyps, refs)) if h.strip() and r.strip()]
    if keep:
        _, _, scored = _bert_scorer(model, device).score([hyps[i] for i in keep], [refs[i] for i in keep],
                                                        batch_size=batch_size)
        f1[keep] = scored.numpy().astype(float)
    return f1


LM_CONTEXT = "Text: {source}\nThe same text in other words:"


def lm_loglik(scorer: Any, sources: Sequence[str], targets: Sequence[str]) -> np.ndarray:
    """Mean token log-likelihood of each target after its source under ``scorer`` (an LLM backend
    with ``loglik``; plain-text prompts, no chat template)."""
    ctx = [LM_CONTEXT.format(source=s) for s in sources]
    tgt = [" " + (t.strip() or ".") for t in targets]  # an empty generation still scores one token
    return np.array([float(lp.mean()) for lp in scorer.loglik(ctx, tgt)])


def lm_scores(scorer: Any, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, np.ndarray]:
    r2g = lm_loglik(scorer, refs, hyps)
    g2r = lm_loglik(scorer, hyps, refs)
    return {"lm_ref_to_gen": r2g, "lm_gen_to_ref": g2r, "lm_score": (r2g + g2r) / 2}


def _words(text: str) -> list[str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(text.lower()).split()


def distinct_n(hyps: Sequence[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in map(_words, hyps) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def grounded(hyps: Sequence[str], titles: Sequence[str], phrases: Sequence[Sequence[str]]) -> np.ndarray:
    """1.0 where the text mentions its item's name or one of its phrases, per pair."""
    out = []
    for h, t, ps in zip(hyps, titles, phrases):
        low = h.lower()
        hit = bool(t and t.strip() and t.lower().strip() in low) or any(p and p.lower() in low for p in ps)
        out.append(float(hit))
    return np.array(out)
