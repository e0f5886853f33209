"""The one interface every LLM backend implements, and a factory over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from llmrec.llm.assemble import Request


@dataclass(kw_only=True)
class GenerationParams:
    max_new_tokens: int = 64
    """Tokens to generate at most."""
    temperature: float = 0.0
    """0 = greedy decoding; > 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass (sampling only)."""
    seed: int | None = None
    """Seed for sampling."""
    stop: list[str] = field(default_factory=list)
    """Stop strings; the returned text is cut before the first one."""
    ignore_eos: bool = False
    """Always generate max_new_tokens (benchmarks: fixed-length outputs)."""
    json_schema: dict | None = None
    """Structured output (vLLM); the HF path validates and repairs in the job runner instead."""


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    finish_reason: str
    """'stop' (end of sequence or stop string) or 'length'."""


@runtime_checkable
class LLMBackend(Protocol):
    name: str
    """Model name as given by the user (catalogue short name, folder or hub id)."""

    @property
    def hidden_size(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(..., ) token ids -> (..., H) input embeddings of the frozen LLM."""

    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None) -> list[Generation]:
        """One generation per request, in order."""

    def loglik(self, contexts: Sequence[Request], targets: Sequence[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each target's tokens after its context, (T_i,) each."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
