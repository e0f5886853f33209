"""BEAT stage 1: disentangled LightGCN embeddings -> discrete behaviour tokens.

Each entity's LightGCN embedding (n_micro * chunk_dim) is cut into n_micro chunks; the micro
quantiser maps each chunk to a micro token and the macro quantiser the whole vector to one macro
token (BEAT reference code: 5 x 64 -> 5 micro + 1 macro). Users and items have their own macro and
micro codebooks (four in all). Tokens are matched in the graph space and lifted into the
sentence encoder's space (see ``vq``), where they meet text and stage 2 reads them.

Ablations (config): ``quantize=False`` (continuous tokens), ``use_macro`` / ``use_micro`` (drop
one token level), and ``plain_lightgcn`` (the LightGCN baseline: BPR on dot products of the graph
embeddings, no tokens and no text).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.tokenizer.config import TokenizerModelConfig
from llmrec.tokenizer.graph import LightGCN
from llmrec.tokenizer.semantic import MicroReconstructor, info_nce
from llmrec.tokenizer.vq import VectorQuantizer

SIDES = ("user", "item")


def codebook_size(cfg: TokenizerModelConfig, n_entities: int, per_entity: int) -> int:
    """cfg.codebook_size, shrunk so each code has >= min_entities_per_code assignments on average."""
    return int(max(2, min(cfg.codebook_size, n_entities * per_entity // cfg.min_entities_per_code)))


@dataclass
class Tokens:
    """Behaviour tokens of B entities in the lookup space (unit vectors)."""
    macro: torch.Tensor | None
    """(B, D) or None without macro tokens."""
    micro: torch.Tensor | None
    """(B, n_micro, d) or None without micro tokens."""
    codes: torch.Tensor
    """(B, T) code ids, macro first then micro (-1 where not quantised)."""
    vq_loss: torch.Tensor
    ortho_loss: torch.Tensor

    def take(self, index: torch.Tensor) -> "Tokens":
        macro = None if self.macro is None else self.macro[index]
        micro = None if self.micro is None else self.micro[index]
        return Tokens(macro, micro, self.codes[index], self.vq_loss, self.ortho_loss)

    def behaviour(self) -> torch.Tensor:
        """(B, D) micro + macro: the macro token plus the concatenated micro tokens."""
        parts = [x for x in (self.macro, None if self.micro is None else self.micro.flatten(1)) if x is not None]
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]


class BehaviorTokenizer(nn.Module):
    def __init__(self, cfg: TokenizerModelConfig, *, n_users: int, n_items: int):
        super().__init__()
        if not (cfg.use_macro or cfg.use_micro) and not cfg.plain_lightgcn:
            raise ValueError("model.use_macro and model.use_micro cannot both be false")
        self.cfg, self.n_users, self.n_items = cfg, n_users, n_items
        dim = cfg.n_micro * cfg.chunk_dim
        self.gcn = LightGCN(n_users, n_items, dim, cfg.n_layers)
        self.vq = nn.ModuleDict()
        if cfg.plain_lightgcn:
            return
        counts = {"user": n_users, "item": n_items}
        for side in SIDES:
            if cfg.use_macro:
                self.vq[f"{side}_macro"] = VectorQuantizer(
                    dim, cfg.code_dim, codebook_size(cfg, counts[side], 1), beta=cfg.beta_commit,
                    quantize=cfg.quantize)
            if cfg.use_micro:
                self.vq[f"{side}_micro"] = VectorQuantizer(
                    cfg.chunk_dim, cfg.code_dim, codebook_size(cfg, counts[side], cfg.n_micro),
                    beta=cfg.beta_commit, quantize=cfg.quantize)
        self.micro_recon = MicroReconstructor(cfg.code_dim)

    @property
    def n_tokens(self) -> int:
        return int(self.cfg.use_macro) + self.cfg.n_micro * int(self.cfg.use_micro)

    def propagate(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, D) users and (N+1, D) items after LightGCN."""
        return self.gcn(adj)

    def tokenize(self, side: str, z: torch.Tensor) -> Tokens:
        """z: (B, D) graph embeddings of one side -> its behaviour tokens."""
        cfg = self.cfg
        macro = micro = None
        codes, vq_loss, ortho = [], z.new_zeros(()), z.new_zeros(())
        none = z.new_full((len(z), 1), -1, dtype=torch.long)
        if cfg.use_macro:
            macro, code, loss = self.vq[f"{side}_macro"](z)  # (B, D)
            codes.append(none if code is None else code[:, None])
            vq_loss = vq_loss + loss
        if cfg.use_micro:
            micro, code, loss = self.vq[f"{side}_micro"](z.view(len(z), cfg.n_micro, cfg.chunk_dim))  # (B, n, d)
            codes.append(none.expand(-1, cfg.n_micro) if code is None else code)
            vq_loss = vq_loss + loss
            if cfg.n_micro > 1:
                gram = micro @ micro.transpose(1, 2)  # (B, n, n) cosines: tokens are unit vectors
                off = ~torch.eye(cfg.n_micro, dtype=torch.bool, device=z.device)
                ortho = gram[:, off].pow(2).mean()
        return Tokens(macro, micro, torch.cat(codes, 1), vq_loss, ortho)

    def text_tokens(self, side: str, tok: Tokens) -> torch.Tensor:
        """(B, T, C) the tokens in the sentence encoder's space, macro first."""
        seq = []
        if tok.macro is not None:
            seq.append(self.vq[f"{side}_macro"].text(tok.macro)[:, None])
        if tok.micro is not None:
            seq.append(self.vq[f"{side}_micro"].text(tok.micro))
        return torch.cat(seq, 1)

    def loss(self, adj: torch.Tensor, batch: dict[str, torch.Tensor], *, alpha: float = 0.2,
             beta: float = 1.0, temperature: float = 0.2) -> dict[str, torch.Tensor]:
        """batch: users (B,), pos (B,), neg (B, K); optional macro_users/macro_items (T,) with
        macro_text (T, C); optional micro_{side}_ids (E,), _phrases (E, P, C), _present/_mask (E, P).
        Returns the named loss terms and ``total``."""
        users, items = self.propagate(adj)
        u, pos, neg = batch["users"], batch["pos"], batch["neg"]
        if self.cfg.plain_lightgcn:
            eu, ep, en = users[u], items[pos], items[neg]  # (B, D), (B, D), (B, K, D)
            s_pos = (eu * ep).sum(-1, keepdim=True)
            s_neg = (eu[:, None] * en).sum(-1)
            bpr = F.softplus(s_neg - s_pos).mean()
            ego = self.gcn.embedding.weight
            reg = 1e-4 * (ego[u].pow(2).sum() + ego[self.n_users + pos - 1].pow(2).sum()) / len(u)
            return {"recon": bpr, "reg": reg, "total": bpr + reg}
        # every entity the step touches is tokenised once per side, then gathered
        wanted = {"user": [u], "item": [torch.cat([pos[:, None], neg], 1).flatten()]}
        has_macro = "macro_text" in batch and self.cfg.use_macro
        if has_macro:
            wanted["user"].append(batch["macro_users"])
            wanted["item"].append(batch["macro_items"])
        for side in SIDES:
            if f"micro_{side}_ids" in batch:
                wanted[side].append(batch[f"micro_{side}_ids"])
        texts, vecs, terms = {}, {}, {"vq": users.new_zeros(()), "ortho": users.new_zeros(())}
        for side, table in (("user", users), ("item", items)):
            uniq, inverse = torch.unique(torch.cat(wanted[side]), return_inverse=True)
            tok = self.tokenize(side, table[uniq])
            terms["vq"] = terms["vq"] + tok.vq_loss
            terms["ortho"] = terms["ortho"] + self.cfg.ortho_weight * tok.ortho_loss
            parts = torch.split(inverse, [len(w) for w in wanted[side]])
            vecs[side] = F.normalize(tok.behaviour(), dim=-1)[parts[0]]  # (n_0, D): gather after the sum
            texts[side] = [self.text_tokens(side, tok.take(p)) for p in parts[1:]]  # (n_i, T, C) for text terms
        hu = vecs["user"]  # (B, D)
        hi = vecs["item"].view(len(u), -1, hu.size(-1))  # (B, 1+K, D)
        sim = (hu[:, None] * hi).sum(-1)  # (B, 1+K) cosines
        if self.cfg.recon_loss == "mse":
            target = torch.zeros_like(sim)
            target[:, 0] = 1.0
            terms["recon"] = F.mse_loss(sim, target)
        else:
            terms["recon"] = F.softplus((sim[:, 1:] - sim[:, :1]) * self.cfg.recon_scale).mean()
        if has_macro:
            mu, mi = texts["user"][0][:, 0], texts["item"][0][:, 0]  # macro tokens come first
            terms["macro"] = alpha * info_nce(mu + mi, batch["macro_text"], temperature)
        for side in SIDES:
            key = f"micro_{side}"
            if f"{key}_ids" in batch:
                terms[key] = beta * self.micro_recon(batch[f"{key}_phrases"], batch[f"{key}_present"],
                                                     texts[side][-1], batch[f"{key}_mask"])
        terms["total"] = sum(terms.values())
        return terms

    @torch.no_grad()
    def encode_all(self, adj: torch.Tensor) -> dict[str, Tokens | torch.Tensor]:
        """Final tokens of every user (U) and item (N+1, row 0 padding); call in eval mode."""
        users, items = self.propagate(adj)
        if self.cfg.plain_lightgcn:
            return {"user_vec": users, "item_vec": items}
        out: dict[str, Tokens | torch.Tensor] = {}
        for side, z in (("user", users), ("item", items)):
            tok = self.tokenize(side, z)
            out[side] = tok
            out[f"{side}_vec"] = F.normalize(tok.behaviour(), dim=-1)
        return out

    def score(self, encoded: dict, users: torch.Tensor) -> torch.Tensor:
        """(B,) user ids -> (B, N+1) scores over items (column 0 = padding)."""
        return encoded["user_vec"][users] @ encoded["item_vec"].T
