"""Soft-token sources: what stands in the prompt's user and item slots.

All map an entity to a few vectors through a trainable module and return ``(B, n, H)`` blocks in
the LLM's input space. The projector is BEAT's: two linear layers codeword dim -> (dim + H) / 2 ->
H; the papers give no activation between them, so this uses GELU (the usual choice in LLM
projectors, e.g. LLaVA-1.5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from llmrec.errors import ConfigError


class Projector(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        mid = (dim + hidden) // 2
        self.net = nn.Sequential(nn.Linear(dim, mid), nn.GELU(), nn.Linear(mid, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def match_scale(self, sample: torch.Tensor, target_std: float) -> None:
        """Data-dependent init (LSUV-style, Mishkin & Matas 2016): scale the last layer so that the
        outputs on ``sample`` inputs vary across inputs as much as the LLM's own input embeddings
        do, and zero its bias. With default init the outputs are ~5x smaller than real embeddings
        and dominated by the shared bias, so every entity starts as nearly the same token."""
        last = self.net[-1]
        last.bias.zero_()
        out = self.net(sample)
        spread = (out - out.mean(0)).std().item()
        if spread > 0:
            last.weight.mul_(target_std / spread)


class BehaviourTokens(nn.Module):
    """BEAT: the stage-1 codes of user and item, looked up in the (text-space) codebooks and
    projected. ``use_macro`` / ``use_micro`` drop token positions for the ablations."""

    def __init__(self, tokenizer, hidden: int, *, use_macro: bool = True, use_micro: bool = True,
                 train_codebooks: bool = False, anchor_vocab: torch.Tensor | None = None, anchor_scale: float = 0.5,
                 seed: int = 0):
        super().__init__()
        names = tokenizer.token_names()
        keep = [j for j, n in enumerate(names) if (use_macro if n == "macro" else use_micro)]
        if not keep:
            raise ConfigError("model.use_macro / use_micro: no behaviour token left (the stage-1 run has "
                              f"{names})")
        self.names = [names[j] for j in keep]
        self.keep = keep
        for side in ("user", "item"):
            codes = torch.as_tensor(np.asarray(tokenizer.codes(side))[:, keep], dtype=torch.long)
            self.register_buffer(f"{side}_codes", codes, persistent=False)
            for level in ("macro", "micro"):
                key = f"codebook_{side}_{level}"
                book = torch.as_tensor(tokenizer.arrays[key], dtype=torch.float32)
                if train_codebooks:
                    setattr(self, f"{side}_{level}", nn.Parameter(book))
                else:
                    self.register_buffer(f"{side}_{level}", book, persistent=False)
        self.is_macro = [n == "macro" for n in self.names]
        self.proj = Projector(int(tokenizer.arrays["codebook_user_macro"].shape[1]), hidden)
        self.anchor = None  # model.anchor_tokens: (2, T, H) user then item positions
        self.anchor_scale = anchor_scale
        if anchor_vocab is not None:
            g = torch.Generator().manual_seed(seed)
            rows = torch.randperm(anchor_vocab.size(0), generator=g)[:2 * len(keep)]
            self.anchor = nn.Parameter(anchor_vocab[rows].float().clone().view(2, len(keep), -1))

    def init_scale(self, target_std: float, n: int = 4096) -> None:
        ids = {side: torch.randperm(len(getattr(self, f"{side}_codes")))[:n] for side in ("user", "item")}
        with torch.no_grad():
            sample = torch.cat([self.codewords(side, ids[side]).flatten(0, 1) for side in ids])
        self.proj.match_scale(sample, target_std * (self.anchor_scale if self.anchor is not None else 1.0))

    def _project(self, user_words: torch.Tensor, item_words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, i = self.proj(user_words), self.proj(item_words)
        if self.anchor is not None:
            u, i = u + self.anchor[0].to(u.dtype), i + self.anchor[1].to(i.dtype)
        return u, i

    def codewords(self, side: str, ids: torch.Tensor) -> torch.Tensor:
        """(B,) dense ids -> (B, T, C) codewords."""
        return self._lookup(side, getattr(self, f"{side}_codes")[ids])

    def _lookup(self, side: str, codes: torch.Tensor) -> torch.Tensor:
        """(B, T) codes at the kept positions -> (B, T, C) codewords."""
        macro, micro = getattr(self, f"{side}_macro"), getattr(self, f"{side}_micro")
        cols = [(macro if m else micro)[codes[:, j]] for j, m in enumerate(self.is_macro)]
        return torch.stack(cols, 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._project(self.codewords("user", users), self.codewords("item", items))

    def from_codes(self, user_codes: torch.Tensor, item_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft tokens from (B, T_all) stage-1 codes at every token position (serving: a cold-start
        entity has codes from the tokenizer's assignment path but no row in the code tables)."""
        keep = torch.as_tensor(self.keep, device=user_codes.device)
        return self._project(self._lookup("user", user_codes[:, keep]), self._lookup("item", item_codes[:, keep]))


class IdTokens(nn.Module):
    """Control (c): one free embedding per user and per item (PETER / PEPLER-style ID tokens),
    initialised from the stage-1 LightGCN graph embeddings and projected to one soft token each."""

    def __init__(self, user_init: torch.Tensor, item_init: torch.Tensor, hidden: int):
        super().__init__()
        self.user = nn.Embedding.from_pretrained(user_init.float().clone(), freeze=False)
        self.item = nn.Embedding.from_pretrained(item_init.float().clone(), freeze=False)
        self.proj = Projector(user_init.size(1), hidden)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(self.user(users)).unsqueeze(1), self.proj(self.item(items)).unsqueeze(1)

    def init_scale(self, target_std: float, n: int = 4096) -> None:
        sample = torch.cat([self.user.weight[torch.randperm(self.user.num_embeddings)[:n]],
                            self.item.weight[torch.randperm(self.item.num_embeddings)[:n]]]).detach()
        self.proj.match_scale(sample, target_std)


class ConstantTokens(nn.Module):
    """Control (a'): the same learned soft tokens for every pair (a trained prompt), initialised
    from random rows of the LLM's vocabulary embeddings (prompt-tuning's usual start)."""

    def __init__(self, vocab_embeddings: torch.Tensor, n: int, *, seed: int = 0):
        super().__init__()
        rows = torch.randperm(vocab_embeddings.size(0), generator=torch.Generator().manual_seed(seed))[:n]
        self.tokens = nn.Parameter(vocab_embeddings[rows].detach().float().clone())
        self.n_user = n // 2

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = users.size(0)
        t = self.tokens.unsqueeze(0).expand(b, -1, -1)
        return t[:, :self.n_user], t[:, self.n_user:]
