"""One prompt assembler for every backend: chat template, tokenisation, soft-token splice.

A request is plain text, a sequence of segments (``str`` | ``Tensor (n, H)`` of soft tokens), or
chat messages whose ``content`` is such a sequence. The assembler renders the chat template with a
private-use marker where each soft block goes, tokenises the text between markers, marks soft
slots with id -1, left-pads the batch, embeds the real ids and fills every soft slot with one
boolean-mask scatter (no Python loop over rows). Every backend receives these identical
full-length embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch

Segment = Union[str, torch.Tensor]
Request = Union[str, Sequence[Segment], Sequence[dict]]
SOFT = -1
_MARK = re.compile("\ue000(\\d+)\ue001")


@dataclass
class Assembled:
    ids: torch.Tensor
    """(B, L) token ids, SOFT (-1) at soft-token slots, ``pad_id`` on the left."""
    attention_mask: torch.Tensor
    """(B, L) 1 for real and soft positions, 0 for padding."""
    embeds: torch.Tensor
    """(B, L, H) input embeddings with soft tokens spliced in."""
    lengths: list[int]
    """Unpadded length of each request."""


class PromptAssembler:
    def __init__(self, tokenizer: Any, embedding: torch.nn.Module, *, use_chat_template: bool = True,
                 system: str | None = None):
        self.tok = tokenizer
        self.embedding = embedding
        self.use_chat = use_chat_template and getattr(tokenizer, "chat_template", None) is not None
        self.system = system
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    # -- text and ids ----------------------------------------------------------------------
    def messages(self, request: Request) -> list[dict]:
        if isinstance(request, str):
            request = [request]
        request = list(request)
        if request and isinstance(request[0], dict):
            return request
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": request}]

    def render(self, request: Request) -> tuple[str, list[torch.Tensor]]:
        """Prompt text with soft blocks as markers, and the soft blocks in order."""
        softs: list[torch.Tensor] = []
        flat = []
        for msg in self.messages(request):
            content = msg["content"]
            if isinstance(content, (str, torch.Tensor)):
                content = [content]
            text = ""
            for seg in content:
                if isinstance(seg, torch.Tensor):
                    if seg.dim() != 2:
                        raise ValueError(f"a soft-token block must be (n, hidden), got {tuple(seg.shape)}")
                    text += f"\ue000{len(softs)}\ue001"
                    softs.append(seg)
                else:
                    text += str(seg)
            flat.append({"role": msg["role"], "content": text})
        if self.use_chat:
            prompt = self.tok.apply_chat_template(flat, tokenize=False, add_generation_prompt=True)
        else:  # base model: plain text; token_ids() puts BOS in front
            prompt = "\n\n".join(m["content"] for m in flat)
        return prompt, softs

    def token_ids(self, request: Request) -> tuple[list[int], list[torch.Tensor]]:
        prompt, softs = self.render(request)
        ids: list[int] = []
        pos = 0
        for match in _MARK.finditer(prompt):
            ids += self._encode(prompt[pos:match.start()])
            ids += [SOFT] * softs[int(match.group(1))].size(0)
            pos = match.end()
        ids += self._encode(prompt[pos:])
        bos = self.tok.bos_token_id
        # base models (no chat template) need BOS, which some GGUF tokenizers (Gemma) do not add
        if not self.use_chat and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return ids, softs

    def _encode(self, text: str) -> list[int]:
        if not text:
            return []
        return self.tok(text, add_special_tokens=False)["input_ids"]

    # -- batch -----------------------------------------------------------------------------
    def __call__(self, requests: Sequence[Request], *, extra: Sequence[list[int]] | None = None,
                 pad_side: str = "left", device: torch.device | str | None = None) -> Assembled:
        """Assemble a batch; ``extra`` token ids (e.g. targets for log-likelihood) are appended."""
        rows, softs = [], []
        for i, req in enumerate(requests):
            ids, s = self.token_ids(req)
            rows.append(ids + (list(extra[i]) if extra is not None else []))
            softs += s
        width = max(len(r) for r in rows)
        device = device or self.embedding.weight.device
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if pad_side == "left" else slice(0, len(r))
            ids[i, sl] = torch.tensor(r, dtype=torch.long)
            mask[i, sl] = 1
        ids, mask = ids.to(device), mask.to(device)
        soft_slots = ids == SOFT  # (B, L)
        embeds = self.embedding(ids.clamp(min=0))  # (B, L, H)
        if softs:
            block = torch.cat(softs).to(device=device, dtype=embeds.dtype)  # (S, H)
            if block.size(0) != int(soft_slots.sum()):
                raise ValueError("soft-token count does not match the marked slots")
            embeds = embeds.masked_scatter(soft_slots.unsqueeze(-1), block)  # one scatter, keeps grads
        return Assembled(ids, mask, embeds, [len(r) for r in rows])
