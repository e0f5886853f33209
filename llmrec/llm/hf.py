"""HF transformers backend: frozen causal LM, batched left-padded generation from embeddings."""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from llmrec.llm.assemble import PromptAssembler, Request
from llmrec.llm.backend import Generation, GenerationParams, cut_at_stop


class _StopStrings:
    """Per-row stop on decoded text. transformers' own ``stop_strings`` needs a byte-level or
    sentencepiece vocabulary; decoding works with any tokenizer. With embeddings as input, the
    ``input_ids`` seen here are the generated tokens only."""

    def __init__(self, tokenizer: Any, stop: Sequence[str]):
        self.tok, self.stop = tokenizer, [s for s in stop if s]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tok.batch_decode(input_ids, skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFBackend:
    def __init__(self, model: str | Any = "smollm2-135m", *, tokenizer: Any = None, dtype: str = "float32",
                 device: str = "auto", batch_size: int = 32, system: str | None = None,
                 use_chat_template: bool | None = None):
        """``model``: catalogue name, HF folder or hub id; or an already built model object
        (tests build tiny random ones) together with its ``tokenizer``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if isinstance(model, str):
            from llmrec.llm.catalog import CATALOG, resolve

            self.name = model
            path = resolve(model)
            t0 = time.perf_counter()
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype])
            self.load_seconds = time.perf_counter() - t0
            if use_chat_template is None and model in CATALOG:
                use_chat_template = CATALOG[model].chat_template
        else:
            self.name, lm, self.load_seconds = getattr(model, "name_or_path", "custom"), model, 0.0
        if tokenizer is None:
            raise ValueError("a model object needs its tokenizer")
        self.model = lm.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)  # frozen: gradients only reach soft tokens
        self._tok = tokenizer
        if self._tok.pad_token_id is None:
            self._tok.pad_token = self._tok.eos_token
        self.batch_size = batch_size
        self.assembler = PromptAssembler(tokenizer, self.model.get_input_embeddings(),
                                         use_chat_template=use_chat_template is not False, system=system)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def tokenizer(self) -> Any:
        return self._tok

    @property
    def chat_template(self) -> str | None:
        return self._tok.chat_template if self.assembler.use_chat else None

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None) -> list[Generation]:
        params = params or GenerationParams()
        out: list[Generation] = []
        for start in range(0, len(requests), self.batch_size):
            out += self._generate_batch(requests[start:start + self.batch_size], params)
        return out

    def _generate_batch(self, requests: Sequence[Request], params: GenerationParams) -> list[Generation]:
        batch = self.assembler(requests, device=self.device)
        sample = params.temperature > 0
        if sample and params.seed is not None:
            torch.manual_seed(params.seed)
        kwargs: dict[str, Any] = dict(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask,
                                      max_new_tokens=params.max_new_tokens, do_sample=sample,
                                      pad_token_id=self.assembler.pad_id)
        if params.ignore_eos:
            kwargs.update(min_new_tokens=params.max_new_tokens)
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            from transformers import StoppingCriteriaList

            kwargs.update(stopping_criteria=StoppingCriteriaList([_StopStrings(self._tok, params.stop)]))
        new = self.model.generate(**kwargs)  # (B, T): only new tokens when given embeddings
        eos = self._eos_ids()
        results = []
        for row in new.tolist():
            ids, finished = [], False
            for t in row:
                if t in eos and not params.ignore_eos:
                    finished = True
                    break
                ids.append(t)
            text = self._tok.decode(ids, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, params.stop)
            reason = "stop" if finished or stopped else "length"
            results.append(Generation(text, ids, reason))
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        return ids

    def target_ids(self, target: str) -> list[int]:
        return self._tok(target, add_special_tokens=False)["input_ids"]

    def forward_logprobs(self, contexts: Sequence[Request], targets: Sequence[str]) -> list[torch.Tensor]:
        """Differentiable per-token log-probabilities of each target. The batch is left-padded so
        every target ends at the last position; logits are computed for the last T+1 positions
        only (T = longest target), not over the whole prompt."""
        extra = [self.target_ids(t) for t in targets]
        batch = self.assembler(contexts, extra=extra, pad_side="left", device=self.device)
        width = max(len(t) for t in extra)
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding
        logits = self.model(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask, position_ids=positions,
                            logits_to_keep=width + 1).logits[:, :-1]  # (B, T, V): predicts the last T tokens
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for i, tgt in enumerate(extra):
            rows = logp[i, width - len(tgt):]
            out.append(rows[torch.arange(len(tgt), device=self.device), torch.tensor(tgt, device=self.device)])
        return out

    @torch.inference_mode()
    def loglik(self, contexts: Sequence[Request], targets: Sequence[str]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for start in range(0, len(contexts), self.batch_size):
            out += [t.cpu() for t in self.forward_logprobs(contexts[start:start + self.batch_size],
                                                           targets[start:start + self.batch_size])]
        return out
