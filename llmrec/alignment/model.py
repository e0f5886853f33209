"""The stage-2 model: a frozen LLM, a soft-token source and a prompt template.

The LLM never trains (its parameters have ``requires_grad=False``, so backward computes activation
gradients only); the trainable parts are the source (projector, optionally codebooks; or the
controls' tokens) and, in the LoRA ablation, the adapters.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.alignment.config import PAIR_INPUTS, TRAINABLE, AlignModelConfig
from llmrec.alignment.pairs import with_inputs_of
from llmrec.alignment.sar import sar_loss
from llmrec.alignment.sources import BehaviourTokens, ConstantTokens, IdTokens
from llmrec.errors import ConfigError
from llmrec.llm.prompts import load_prompt


def build_source(cfg: AlignModelConfig, backend: Any, tokenizer: Any, *, seed: int = 0) -> nn.Module | None:
    hidden = backend.hidden_size
    source: Any = None
    if cfg.variant == "beat":
        anchors = (backend.embed_tokens(torch.arange(len(backend.tokenizer))).detach()
                   if cfg.anchor_tokens else None)
        source = BehaviourTokens(tokenizer, hidden, use_macro=cfg.use_macro, use_micro=cfg.use_micro,
                                 train_codebooks=cfg.train_codebooks, anchor_vocab=anchors,
                                 anchor_scale=cfg.anchor_scale, seed=seed)
    elif cfg.variant == "per_id":
        users, items = tokenizer.graph()
        source = IdTokens(users, items, hidden)
    if source is not None:
        if cfg.scale_init:
            vocab = backend.embed_tokens(torch.arange(min(len(backend.tokenizer), 8192))).detach().float()
            source.init_scale(float(vocab.std()))
        return source
    if cfg.variant in ("constant", "evidence", "profile_trained"):
        vocab = backend.embed_tokens(torch.arange(len(backend.tokenizer))).detach()  # any backend
        return ConstantTokens(vocab, cfg.n_constant, seed=seed)
    return None


class Aligner(nn.Module):
    def __init__(self, cfg: AlignModelConfig, backend: Any, tokenizer: Any = None, *, seed: int = 0,
                 evidence: Any = None):
        """``evidence``: an EvidenceIndex (llmrec.alignment.evidence), required by the evidence variants."""
        super().__init__()
        self.cfg = cfg
        self.backend = backend  # not a submodule: the frozen LLM stays out of state_dict()
        self.evidence = evidence
        self.template = load_prompt(cfg.prompt_name())
        torch.manual_seed(seed)
        self.source = build_source(cfg, backend, tokenizer, seed=seed)
        self.lora = None
        if cfg.lora_rank > 0:
            self._add_lora()

    def _add_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        peft_model = get_peft_model(self.backend.model, LoraConfig(r=self.cfg.lora_rank, lora_alpha=self.cfg.lora_alpha,
                                                                   target_modules=["q_proj", "v_proj"]))
        self.backend.model = peft_model
        self.lora = nn.ParameterDict({k.replace(".", "__"): p for k, p in peft_model.named_parameters()
                                      if p.requires_grad})

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return getattr(self.backend, "device", torch.device("cpu"))  # vLLM takes CPU embeddings

    @property
    def compute_dtype(self) -> str:
        """model.dtype resolved once for this device (auto: bf16 only where it is native)."""
        if getattr(self, "_dtype", None) is None:
            from llmrec.dtype import resolve_dtype

            self._dtype = resolve_dtype(self.cfg.dtype, self.device, key="model.dtype")[0]
        return self._dtype

    def autocast(self):
        # vLLM takes embeddings and runs in its own dtype; only an in-process HF model is autocast
        on = hasattr(self.backend, "model") and self.compute_dtype == "bfloat16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if on else nullcontext()

    # -- prompts ---------------------------------------------------------------------------------
    def soft_blocks(self, rows: pd.DataFrame) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.source is None:
            return None, None
        dev = self.device
        self.source.to(dev)
        if "user_codes" in rows and isinstance(self.source, BehaviourTokens):  # serving: codes given
            codes = [torch.tensor(np.stack(rows[c].to_numpy()), dtype=torch.long, device=dev)
                     for c in ("user_codes", "item_codes")]
            return self.source.from_codes(*codes)
        users = torch.tensor(rows["user"].to_numpy(), dtype=torch.long)
        items = torch.tensor(rows["item"].to_numpy(), dtype=torch.long)
        return self.source(users.to(dev), items.to(dev))

    def requests(self, rows: pd.DataFrame) -> tuple[list[list[dict]], torch.Tensor | None]:
        """Chat requests for the rows, and the (B, K, H) soft tokens they carry (None without)."""
        u, i = self.soft_blocks(rows)
        out = []
        for k, row in enumerate(rows.itertuples(index=False)):
            values: dict[str, Any] = {"title": row.title}
            if "user_tokens" in self.template.placeholders:
                values.update(user_tokens=u[k], item_tokens=i[k])
            if "user_profile" in self.template.placeholders:
                values.update(user_profile=row.user_summary, item_profile=row.item_summary)
            if "evidence" in self.template.placeholders:  # from the row's (user, item): a permuted row
                given = getattr(row, "evidence_text", None)  # gets its donor's; a cold-start row brings its own
                values["evidence"] = given if isinstance(given, str) and given else \
                    self.evidence(int(row.user), int(row.item)).text()
            out.append(self.template.messages(**values))
        soft = torch.cat([u, i], 1) if u is not None else None
        return out, soft

    # -- training loss ---------------------------------------------------------------------------
    def targets(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        eos = self.backend.tokenizer.eos_token_id
        out = []
        for text in texts:
            ids = self.backend.target_ids(" ".join(str(text).split()))
            out.append(ids[:max_tokens] if len(ids) >= max_tokens or eos is None else ids + [eos])
        return out

    def _nll(self, rows: pd.DataFrame, tgt: list[list[int]], *, per_row: bool = False):
        """Token-mean NLL of the targets after each row's prompt; with ``per_row`` also each row's own
        token mean, (B,). Returns (nll, per-row or None, labels, soft tokens)."""
        reqs, soft = self.requests(rows)
        bk = self.backend
        batch = bk.assembler(reqs, extra=tgt, pad_side="left", device=bk.device)
        width = max(map(len, tgt))
        labels = torch.full((len(tgt), width), -100, dtype=torch.long)
        for r, ids in enumerate(tgt):
            labels[r, width - len(ids):] = torch.tensor(ids)
        labels = labels.to(bk.device)
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding
        with self.autocast():
            logits = bk.model(inputs_embeds=batch.embeds, attention_mask=batch.attention_mask,
                              position_ids=positions, logits_to_keep=width + 1).logits[:, :-1]
        flat = logits.float().reshape(-1, logits.size(-1))
        nll = F.cross_entropy(flat, labels.reshape(-1), ignore_index=-100)
        row = None
        if per_row:
            ce = F.cross_entropy(flat, labels.reshape(-1), ignore_index=-100, reduction="none").view(labels.shape)
            kept = labels != -100
            row = (ce * kept).sum(1) / kept.sum(1)
        return nll, row, labels, soft

    def loss(self, rows: pd.DataFrame, *, max_target_tokens: int = 64) -> dict[str, torch.Tensor]:
        """NLL of the reference explanation tokens only (prompt positions carry no loss), plus
        ``sar_weight`` * SAR when enabled and the variant has soft tokens, plus the pair-contrastive
        term when ``contrast_weight`` > 0."""
        tgt = self.targets(list(rows["reference"]), max_target_tokens)
        contrast = self.cfg.contrast_weight > 0
        nll, own, labels, soft = self._nll(rows, tgt, per_row=contrast)
        out = {"nll": nll, "loss": nll}
        if self.cfg.sar and soft is not None:
            text = self.backend.embed_tokens(labels.clamp(min=0))
            sar = sar_loss(text, (labels != -100).long(), soft)
            out["sar"] = sar
            out["loss"] = nll + self.cfg.sar_weight * sar
        if contrast:
            donor, kept = in_batch_donors(rows)
            other = with_inputs_of(rows, donor)
            _, theirs, _, _ = self._nll(other, tgt, per_row=True)
            keep = torch.as_tensor(kept, device=own.device)
            hinge = F.relu(self.cfg.contrast_margin + own - theirs)[keep]
            term = hinge.mean() if len(hinge) else own.sum() * 0.0
            out["contrast"] = term
            out["nll_gap"] = (theirs - own)[keep].mean().detach() if len(hinge) else term.detach()
            out["loss"] = out["loss"] + self.cfg.contrast_weight * term
        return out

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups: tokens in the LLM's input space at ``model.token_lr``, the rest at ``lr``."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if self.cfg.token_lr is None:  # one group, as before the option existed (old checkpoints resume)
            return [{"params": [p for _, p in named], "lr": lr}]
        in_space = {"source.tokens", "source.anchor"}
        tokens = [p for n, p in named if n in in_space]
        rest = [p for n, p in named if n not in in_space]
        return [g for g in ({"params": tokens, "lr": self.cfg.token_lr}, {"params": rest, "lr": lr}) if g["params"]]

    # -- state -----------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if not m.endswith(("_codes",))]:
            raise ConfigError(f"checkpoint does not fit this model: missing {missing}, unexpected {unexpected}")


def in_batch_donors(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's donor for the pair-contrastive term: the next row (cyclically), and whether it
    shares neither the row's user nor its item (rows where it does are left out)."""
    donor = np.roll(np.arange(len(rows)), -1)
    users, items = rows["user"].to_numpy(), rows["item"].to_numpy()
    return donor, (users != users[donor]) & (items != items[donor])


def check_variant(cfg: AlignModelConfig, tokenizer: Any) -> None:
    if cfg.variant in ("beat", "per_id", "evidence", "evidence_plain") and tokenizer is None:
        raise ConfigError(f"variant {cfg.variant!r} needs model.tokenizer_run (a stage-1 run folder)")
    if cfg.anchor_tokens and cfg.variant != "beat":
        raise ConfigError(f"model.anchor_tokens applies to the beat variant only, not {cfg.variant!r}")
    if cfg.token_lr is not None and not cfg.token_lr > 0:
        raise ConfigError(f"model.token_lr must be > 0 (or null for train.lr), got {cfg.token_lr}")
    if cfg.contrast_weight < 0 or cfg.contrast_margin < 0:
        raise ConfigError(f"model.contrast_weight and model.contrast_margin must be >= 0, got "
                          f"{cfg.contrast_weight} and {cfg.contrast_margin}")
    if cfg.contrast_weight > 0 and not (cfg.variant in PAIR_INPUTS and cfg.variant in TRAINABLE):
        raise ConfigError(f"model.contrast_weight applies to variants with per-pair inputs and trained parts "
                          f"({', '.join(v for v in PAIR_INPUTS if v in TRAINABLE)}), not {cfg.variant!r}")
    if not cfg.anchor_scale >= 0:
        raise ConfigError(f"model.anchor_scale must be >= 0, got {cfg.anchor_scale}")
