"""The explanation metrics as Hugging Face ``evaluate`` modules, defined here so that they load
without the hub (unreachable offline). Each computes exactly what :mod:`llmrec.eval.text` does::

    from llmrec.eval.hf_evaluate import load
    bleu = load("bleu")                       # config_name "4" for BLEU-4
    bleu.compute(predictions=[...], references=[...])
    evaluate.combine([load("bleu"), load("rouge_l")]).compute(predictions=..., references=...)

``grounding`` takes, as its reference per prediction, the list of strings that count (the item's
name and the user's/item's intention phrases).
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from llmrec.eval import text as tm

_PAIRS = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
_INPUTS = """
Args:
    predictions: generated explanations (strings).
    references: one reference explanation per prediction.
"""


class _Base(evaluate.Metric):
    DESCRIPTION = ""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description=self.DESCRIPTION, citation="", inputs_description=_INPUTS,
                                   features=_PAIRS, module_type="metric")


class BLEU(_Base):
    """Corpus BLEU in [0, 1] on lower-cased text, sacrebleu 13a tokens; config_name "1" or "4"."""

    DESCRIPTION = "Corpus BLEU-n (sacrebleu, 13a tokenizer, lower-cased), in [0, 1]."

    def _compute(self, predictions, references) -> dict[str, Any]:
        order = int(self.config_name) if self.config_name in ("1", "2", "3", "4") else 4
        return {f"bleu{order}": tm.corpus_bleu(predictions, references, order)}


class RougeL(_Base):
    DESCRIPTION = "Mean ROUGE-L F-measure (rouge-score)."

    def _compute(self, predictions, references) -> dict[str, Any]:
        return {"rouge_l": float(tm.rouge_l(predictions, references).mean())}


class BertScore(_Base):
    DESCRIPTION = "Mean BERTScore F1 with the local MiniLM (num_layers=6, no rescaling); config_name = model."

    def _compute(self, predictions, references) -> dict[str, Any]:
        model = self.config_name if self.config_name not in (None, "default") else "minilm-l6"
        return {"bert_f1": float(tm.bert_score_f1(predictions, references, model=model).mean())}


class LMScore(_Base):
    """BARTScore-style mean token log-likelihoods under one scorer LM (config_name = model)."""

    DESCRIPTION = "Mean token log-likelihood of prediction given reference and back, under one fixed LM."

    def _compute(self, predictions, references) -> dict[str, Any]:
        from llmrec.llm.hf import HFBackend

        model = self.config_name if self.config_name not in (None, "default") else "smollm2-135m"
        scores = tm.lm_scores(HFBackend(model, use_chat_template=False), predictions, references)
        return {k: float(v.mean()) for k, v in scores.items()}


class Distinct(_Base):
    DESCRIPTION = "distinct-1 and distinct-2 over the predictions (references are ignored)."

    def _compute(self, predictions, references) -> dict[str, Any]:
        return {"distinct1": tm.distinct_n(predictions, 1), "distinct2": tm.distinct_n(predictions, 2)}


class Grounding(_Base):
    DESCRIPTION = "Share of predictions that mention one of their grounding strings (item name, phrases)."

    def _info(self) -> evaluate.MetricInfo:
        feats = datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))})
        return evaluate.MetricInfo(description=self.DESCRIPTION, citation="", features=feats, module_type="metric",
                                   inputs_description="predictions: strings; references: list of strings each")

    def _compute(self, predictions, references) -> dict[str, Any]:
        hits = tm.grounded(predictions, [""] * len(predictions), references)
        return {"grounding": float(np.mean(hits)) if len(hits) else 0.0}


MODULES = {"bleu": BLEU, "rouge_l": RougeL, "bertscore": BertScore, "lm_score": LMScore, "distinct": Distinct,
           "grounding": Grounding}


def load(name: str, config_name: str | None = None, **kwargs: Any) -> evaluate.EvaluationModule:
    """A module by name (like ``evaluate.load``, but local): bleu, rouge_l, bertscore, lm_score,
    distinct, grounding."""
    if name not in MODULES:
        from llmrec.errors import ConfigError

        raise ConfigError(f"unknown metric {name!r}; known: {sorted(MODULES)}")
    return MODULES[name](config_name=config_name, **kwargs)
