"""MCLMR: a model-agnostic causal plug-in for multi-behaviour recommendation.

Worn by any backbone that exposes per-position user states (``train_states``; SASRec and MF
today): ``backbone: {name: sasrec, ..., plugins: {mclmr: {...}}}``. The wrapped model is itself a
backbone (same contract), so training, evaluation, checkpoints and serving need nothing new.

Causal graph (our reading; the paper gives no equations). Z_u = the user's activity stratum
(how much they interact: habit / conformity), Z_i = the item's popularity stratum. Both are
confounders: Z_i -> (which items get auxiliary behaviours and the target behaviour), Z_u -> (how
readily the user acts, and on popular items), and U, I -> Y (true preference). The observed
conditional P(y | u, i) mixes preference with the Z paths, so popular items look preferred.

1. Backdoor adjustment. Training scores are ``s(u, i) + c[Z_u] * log(1 + pop_i)``: the
   backbone's dot product plus a learned conformity per user-activity stratum times the item's
   training log-popularity, which soaks up the confounded part (the PDA form, Zhang et al. SIGIR
   2021, with strata for users). The intervention
   ``P(y | do(u, i)) = sum_z P(y | u, i, z) P(z)`` over the popularity strata (their training
   shares and mean log-popularity) is ``do_probability``; it is monotone in ``s`` plus the
   aggregation term, so ranking (``score``) uses those and drops the confounder term.
2. Adaptive aggregation. One linear expert per auxiliary behaviour maps the user state to a
   behaviour-specific state h_k; a router with a user part and an item part,
   ``softmax_k(a_k . h + b_k . e_i)``, weighs the experts per user-item pair and adds
   ``sum_k w_k(u, i) h_k . e_i`` to the target score. Each expert is also trained on its own
   behaviour's targets (``aux_weight``). Mean router weights are logged. Full ranking holds a
   (B, items, experts) tensor.
3. Bias-aware contrastive learning. For a pair with the target and an auxiliary behaviour, the
   pair's target representation ``h * e_i`` and its behaviour representation ``h_k * e_i`` are
   pulled together (InfoNCE, cosine, ``cl_temperature``); negatives are other pairs of the batch
   whose items share the anchor's popularity stratum, so the contrast cannot be won by
   popularity alone.

Statistics (popularity, activity, strata) come from the TRAINING split only (``fit_data``) and
live in buffers, so a checkpoint rebuilds the plug-in without data. Switches: ``backdoor``,
``aggregation``, ``aux_weight: 0``, ``cl_weight: 0``; all off is the base model's loss exactly
(when every target step carries the target behaviour).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.layers import to_bits
from llmrec.backbones.sampling import NegativeSampler, sampled_ce


@dataclass(kw_only=True)
class MCLMRConfig:
    n_items: int = 0
    """Number of real items (filled from the data)."""
    n_users: int = 0
    """Number of users (filled from the data)."""
    n_behaviors: int = 0
    """Behaviour vocabulary size (filled from the data)."""
    pop_strata: int = 5
    """Item popularity strata (training-count quantiles): the confounder values summed over."""
    user_strata: int = 3
    """User activity strata (training-count quantiles), one conformity coefficient each."""
    backdoor: bool = True
    """Train with the confounder term and rank by the intervention (false: confounded training)."""
    aggregation: bool = True
    """The auxiliary-behaviour experts and their per-pair router (needs >= 2 behaviours)."""
    aux_weight: float = 0.5
    """Weight of each auxiliary expert's own next-item loss on its behaviour's targets."""
    cl_weight: float = 0.1
    """Weight of the bias-aware contrastive loss (0 = off; needs aggregation)."""
    cl_temperature: float = 0.2
    """tau of the contrastive InfoNCE."""
    cl_anchors: int = 256
    """At most this many anchor pairs per batch for the contrastive loss."""
    n_sampled: int = 0
    """0: every training loss is a full softmax over the items (or sampled as the base's when its
    loss is sampled_ce: its n_negatives, sampler and sampler_alpha); K > 0: a sampled softmax
    against K items shared by the batch (llmrec.backbones.sampling), for the main and the auxiliary
    losses alike. Ranking always scores every item."""
    sampler: Literal["uniform", "popularity"] = "uniform"
    """Proposal of the sampled loss when ``n_sampled`` > 0 is set here (else the base's)."""
    sampler_alpha: float = 1.0
    """Exponent of the popularity proposal."""


def row_ce(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(T,) cross-entropy of each target given its row's logits (B, N+1): ``rows`` (T,) index them."""
    return logits.logsumexp(1)[rows] - logits[rows, targets]


def quantile_strata(counts: np.ndarray, n: int) -> np.ndarray:
    """Stratum 0..n-1 of each count by its quantile (ties share a stratum)."""
    ranks = np.argsort(np.argsort(counts, kind="stable"), kind="stable")
    return np.minimum((ranks * n) // max(len(counts), 1), n - 1).astype(np.int64)


class MCLMR(Backbone):
    config_class = MCLMRConfig

    def __init__(self, base: Backbone, config: MCLMRConfig):
        super().__init__(config)
        c = config
        if not hasattr(base, "train_states"):
            raise ValueError(f"the mclmr plug-in needs a backbone with train_states(); "
                             f"{type(base).__name__} has none (supported: sasrec, mf)")
        if c.n_items <= 0 or c.n_users <= 0:
            raise ValueError("MCLMRConfig.n_items and n_users must be set from the data")
        base_loss = getattr(base.config, "loss", "ce")
        if base_loss == "sampled_ce" and c.n_sampled == 0:
            # the plug-in's own loss samples as its base's would
            c.n_sampled, c.sampler, c.sampler_alpha = (base.config.n_negatives, base.config.sampler,
                                                       base.config.sampler_alpha)
        elif base_loss not in ("ce", "sampled_ce"):
            raise ValueError(f"the mclmr plug-in trains its own softmax loss (full, or sampled with "
                             f"plugins.mclmr.n_sampled); its base's loss must be ce or sampled_ce, got {base_loss!r}")
        if c.aggregation and c.n_behaviors < 2:
            raise ValueError("mclmr aggregation needs auxiliary behaviours (n_behaviors >= 2; enable "
                             "data.derive_behaviors or set plugins.mclmr.aggregation=false)")
        if c.cl_weight > 0 and not c.aggregation:
            raise ValueError("mclmr cl_weight > 0 needs aggregation (the behaviour representations)")
        self.base = base
        self.sampler = NegativeSampler(c.n_items, c.n_sampled, c.sampler, c.sampler_alpha)
        self.requires = frozenset(base.requires | {"users", "target_behaviors", "target_behavior"})
        dim = base.item_embeddings().size(-1)
        self.conformity = nn.Parameter(torch.zeros(c.user_strata))
        n_aux = max(c.n_behaviors - 1, 0)
        if c.aggregation:
            self.experts = nn.Parameter(torch.eye(dim).repeat(n_aux, 1, 1) + 0.01 * torch.randn(n_aux, dim, dim))
            self.route_user = nn.Linear(dim, n_aux)
            self.route_item = nn.Linear(dim, n_aux, bias=False)
        self.register_buffer("log_pop", torch.zeros(c.n_items + 1))
        self.register_buffer("item_stratum", torch.zeros(c.n_items + 1, dtype=torch.long))
        self.register_buffer("user_stratum", torch.zeros(c.n_users, dtype=torch.long))
        self.register_buffer("stratum_prior", torch.full((c.pop_strata,), 1.0 / c.pop_strata))
        self.register_buffer("stratum_log_pop", torch.zeros(c.pop_strata))
        self._sums: dict[str, float] = {}
        self._n = 0

    # -- construction ------------------------------------------------------------------------
    def section(self) -> dict[str, Any]:
        return {**self.base.section(), "plugins": {"mclmr": dataclasses.asdict(self.config)}}

    def fit_data(self, data) -> None:
        """Popularity, activity and strata from the training split of a Prepared dataset."""
        from llmrec.data.prepare import TRAIN

        c = self.config
        train = data.split == TRAIN
        pop = np.bincount(data.item[train], minlength=c.n_items + 1).astype(float)
        activity = np.bincount(data.user[train], minlength=c.n_users).astype(float)
        item_stratum = np.zeros(c.n_items + 1, dtype=np.int64)
        item_stratum[1:] = quantile_strata(pop[1:], c.pop_strata)
        log_pop = np.log1p(pop)
        share = np.bincount(item_stratum[data.item[train]], minlength=c.pop_strata).astype(float)
        mean = np.array([log_pop[1:][item_stratum[1:] == k].mean() if (item_stratum[1:] == k).any() else 0.0
                         for k in range(c.pop_strata)])
        with torch.no_grad():
            self.log_pop.copy_(torch.from_numpy(log_pop))
            self.item_stratum.copy_(torch.from_numpy(item_stratum))
            self.user_stratum.copy_(torch.from_numpy(quantile_strata(activity, c.user_strata)))
            self.stratum_prior.copy_(torch.from_numpy(share / max(share.sum(), 1.0)))
            self.stratum_log_pop.copy_(torch.from_numpy(mean))

    # -- scores ------------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.base.encode(batch)

    def item_embeddings(self) -> torch.Tensor:
        return self.base.item_embeddings()

    def _aggregate(self, h: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """h (T, D), item vectors (N, D) -> aggregation scores (T, N), router weights (K, T, N),
        expert states (T, K, D), each expert's own scores (K, T, N) (its auxiliary loss reuses them)."""
        hk = torch.einsum("td,kde->tke", h, self.experts)  # (T, K, D)
        # expert-major (K, T, N): contiguous matmuls and reductions, ~2.5x faster than (T, N, K)
        route = self.route_user(h).T.unsqueeze(2) + self.route_item(items).T.unsqueeze(1)  # (K, T, N)
        w = route.softmax(0)
        per_expert = torch.matmul(hk.transpose(0, 1), items.T)  # (K, T, N)
        return (w * per_expert).sum(0), w, hk, per_expert

    def _deconfounded(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                                                      torch.Tensor | None]:
        """Scores (T, N+1) without the confounder term, and the aggregation's router weights, expert
        states and per-expert scores (None without aggregation)."""
        items = self.item_embeddings()
        s = h @ items.T  # (T, N+1)
        if not self.config.aggregation:
            return s, None, None, None
        agg, w, hk, per_expert = self._aggregate(h, items)
        return s + agg, w, hk, per_expert

    def score(self, batch: dict[str, torch.Tensor], candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Ranking under the intervention: the confounder term is summed out (a constant per user)."""
        scores = self._deconfounded(self.encode(batch))[0]
        scores[:, 0] = float("-inf")
        return scores if candidates is None else scores.gather(1, candidates)

    def confounder_term(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) users -> (B, N+1): conformity of the user's stratum times each item's log-popularity."""
        return self.conformity[self.user_stratum[users]].unsqueeze(1) * self.log_pop.unsqueeze(0)

    def do_probability(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """P(y | do(u, i)) = sum_z P(z) sigmoid(score + conformity * log-pop(z)) over popularity strata."""
        base = self._deconfounded(self.encode(batch))[0]  # (B, N+1)
        conf = self.conformity[self.user_stratum[batch["users"]]]  # (B,)
        shifts = conf.unsqueeze(1) * self.stratum_log_pop.unsqueeze(0)  # (B, Z)
        probs = torch.sigmoid(base.unsqueeze(-1) + shifts.unsqueeze(1))  # (B, N+1, Z)
        return (probs * self.stratum_prior).sum(-1)

    # -- training ----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        states = self.base.train_states(batch)  # (B, L, D)
        targets = batch["targets"]
        valid = targets != 0
        rows = valid.nonzero()[:, 0]
        h, t = states[valid], targets[valid]  # (T, D), (T,)
        sets = to_bits(batch["target_behaviors"][valid], max(c.n_behaviors, 1))  # (T, nb)
        target_bit = to_bits(batch["target_behavior"][:1], max(c.n_behaviors, 1))[0]  # (nb,)
        on_target = (sets & target_bit).any(-1)  # (T,)
        if self.sampler.active:
            return self._sampled_loss(h, t, batch["users"][rows], sets, target_bit, on_target), states[:, -1]
        if getattr(self.base, "order_free", False):
            return self._row_loss(states[:, 0], batch["users"], rows, t, sets, target_bit, on_target), states[:, -1]
        logits, w, hk, per_expert = self._deconfounded(h)
        conf = self.confounder_term(batch["users"][rows]) if c.backdoor else 0.0
        full = logits + conf
        full[:, 0] = float("-inf")
        loss = F.cross_entropy(full[on_target], t[on_target]) if on_target.any() else full.sum() * 0.0
        if c.aggregation:
            self._log("router", w[:, torch.arange(len(t)), t].detach().mean(1))  # weights at the true items

            def expert_ce(k: int, has: torch.Tensor) -> torch.Tensor:
                aux = per_expert[k, has] + (conf[has] if c.backdoor else 0.0)  # = hk[has, k] @ items.T
                aux[:, 0] = float("-inf")
                return F.cross_entropy(aux, t[has])

            loss = self._aux_term(loss, sets, target_bit, expert_ce)
        loss = self._contrastive_term(loss, h, hk, t, sets, target_bit, on_target)
        self._n += 1
        return loss, states[:, -1]

    def _row_loss(self, hu, users, rows, t, sets, target_bit, on_target) -> torch.Tensor:
        """The full path's loss for an order-free base (MF: every position of a row holds the row's
        state): the (B, N) scores are computed once per row, not once per target (L times fewer),
        and each target's cross-entropy is read off its row. Equal to the per-target path."""
        c = self.config
        logits, w, hk_rows, per_expert = self._deconfounded(hu)  # (B, N+1), (K, B, N+1), (B, K, D), (K, B, N+1)
        conf = self.confounder_term(users) if c.backdoor else 0.0
        full = logits + conf
        full[:, 0] = float("-inf")
        ce = row_ce(full, rows, t)
        loss = ce[on_target].mean() if on_target.any() else full.sum() * 0.0
        hk = None
        if c.aggregation:
            self._log("router", w[:, rows, t].detach().mean(1))

            def expert_ce(k: int, has: torch.Tensor) -> torch.Tensor:
                aux = per_expert[k] + conf  # = hk_rows[:, k] @ items.T
                aux[:, 0] = float("-inf")
                return row_ce(aux, rows[has], t[has]).mean()

            loss = self._aux_term(loss, sets, target_bit, expert_ce)
            hk = hk_rows[rows]
        loss = self._contrastive_term(loss, hu[rows], hk, t, sets, target_bit, on_target)
        self._n += 1
        return loss

    def sampled_logits(self, h: torch.Tensor, t: torch.Tensor, users: torch.Tensor, neg: torch.Tensor):
        """The training logits of the full path at the target (T,) and at the draws ``neg`` (T, K),
        without scoring every item; also the router weights at the targets (K_aux, T) and the
        expert states (T, K_aux, D)."""
        c = self.config
        items = self.item_embeddings()
        e_t, e_n = items[t], items[neg]  # (T, D), (K, D)
        pos, other = (h * e_t).sum(-1), h @ e_n.T  # (T,), (T, K)
        w_t, hk = None, None
        if c.aggregation:
            agg, _, hk, _ = self._aggregate(h, e_n)  # (T, K)
            w_t = (self.route_user(h) + self.route_item(e_t)).softmax(-1)  # (T, K_aux)
            pos = pos + (w_t * torch.einsum("tkd,td->tk", hk, e_t)).sum(-1)
            other = other + agg
            w_t = w_t.T
        if c.backdoor:
            conf = self.conformity[self.user_stratum[users]]  # (T,)
            pos = pos + conf * self.log_pop[t]
            other = other + conf.unsqueeze(1) * self.log_pop[neg].unsqueeze(0)
        return pos, other, w_t, hk

    def _sampled_loss(self, h, t, users, sets, target_bit, on_target) -> torch.Tensor:
        c = self.config
        neg, correction = self.sampler.draw(h.device)
        pos, other, w_t, hk = self.sampled_logits(h, t, users, neg)
        ce = sampled_ce(pos, other, t, neg, correction)
        loss = ce[on_target].mean() if on_target.any() else ce.sum() * 0.0
        if c.aggregation:
            items = self.item_embeddings()
            self._log("router", w_t.detach().mean(1))
            conf = self.conformity[self.user_stratum[users]] if c.backdoor else None

            def expert_ce(k: int, has: torch.Tensor) -> torch.Tensor:
                hs = hk[has, k]
                a_pos, a_neg = (hs * items[t[has]]).sum(-1), hs @ items[neg].T
                if conf is not None:
                    a_pos = a_pos + conf[has] * self.log_pop[t[has]]
                    a_neg = a_neg + conf[has].unsqueeze(1) * self.log_pop[neg].unsqueeze(0)
                return sampled_ce(a_pos, a_neg, t[has], neg, correction).mean()

            loss = self._aux_term(loss, sets, target_bit, expert_ce)
        loss = self._contrastive_term(loss, h, hk, t, sets, target_bit, on_target)
        self._n += 1
        return loss

    def _aux_term(self, loss, sets, target_bit, expert_ce) -> torch.Tensor:
        """Adds aux_weight x each auxiliary expert's loss (``expert_ce(k, targets)``: expert k over
        the boolean-selected targets; full, sampled or per row) over the pairs that carry its behaviour."""
        if self.config.aux_weight <= 0:
            return loss
        aux_idx = (~target_bit).nonzero().squeeze(-1)  # (K,) behaviour bit of each expert
        for k, bit in enumerate(aux_idx.tolist()):
            has = sets[:, bit]
            if has.any():
                loss = loss + self.config.aux_weight * expert_ce(k, has)
        return loss

    def _contrastive_term(self, loss, h, hk, t, sets, target_bit, on_target) -> torch.Tensor:
        c = self.config
        if c.aggregation:
            aux_idx = (~target_bit).nonzero().squeeze(-1)
            if c.cl_weight > 0:
                cl = self.contrastive(h, hk, t, sets[:, aux_idx] & on_target.unsqueeze(1))
                if cl is not None:
                    loss = loss + c.cl_weight * cl
                    self._log("cl", cl.detach().view(1))
        return loss

    def contrastive(self, h: torch.Tensor, hk: torch.Tensor, t: torch.Tensor,
                    pairs: torch.Tensor) -> torch.Tensor | None:
        """InfoNCE between a pair's target and auxiliary representations; negatives from the same
        popularity stratum only. ``pairs`` (T, K): the pair has the target and behaviour k."""
        anchor_t, anchor_k = pairs.nonzero(as_tuple=True)
        if len(anchor_t) < 2:
            return None
        if len(anchor_t) > self.config.cl_anchors:
            keep = torch.randperm(len(anchor_t), device=h.device)[:self.config.cl_anchors]
            anchor_t, anchor_k = anchor_t[keep], anchor_k[keep]
        e = self.item_embeddings()[t[anchor_t]]
        a = F.normalize(h[anchor_t] * e, dim=-1)  # (M, D) target representation of the pair
        b = F.normalize(hk[anchor_t, anchor_k] * e, dim=-1)  # (M, D) its behaviour representation
        sim = a @ b.T / self.config.cl_temperature  # (M, M)
        stratum = self.item_stratum[t[anchor_t]]
        same = stratum.unsqueeze(0) == stratum.unsqueeze(1)
        sim = sim.masked_fill(~same, float("-inf"))  # diagonal is always same-stratum
        has_neg = same.sum(1) > 1
        if not has_neg.any():
            return None
        return F.cross_entropy(sim[has_neg], torch.arange(len(sim), device=h.device)[has_neg])

    def _log(self, name: str, value: torch.Tensor) -> None:
        if self.training:
            prev = self._sums.get(name)
            self._sums[name] = value.cpu() if prev is None else prev + value.cpu()
            self._sums[name + "_n"] = self._sums.get(name + "_n", 0) + 1

    def extra_stats(self) -> dict[str, float]:
        """Mean router weight per auxiliary behaviour (at the true items), mean contrastive loss."""
        out: dict[str, float] = {}
        if "router" in self._sums:
            for k, v in enumerate((self._sums["router"] / self._sums["router_n"]).tolist()):
                out[f"router{k}"] = float(v)
        if "cl" in self._sums:
            out["loss_cl"] = float(self._sums["cl"] / self._sums["cl_n"])
        out.update({f"conformity{k}": float(v) for k, v in enumerate(self.conformity.detach().tolist())})
        self._sums, self._n = {}, 0
        return {**self.base.extra_stats(), **out}


CONFIG = MCLMRConfig


def wrap_mclmr(base: Backbone, section: dict[str, Any], sizes: dict[str, int]) -> MCLMR:
    from llmrec.config import from_dict

    section = dict(section or {})
    fields = {f.name for f in dataclasses.fields(MCLMRConfig)}
    for key in ("n_items", "n_users", "n_behaviors"):
        if key in sizes and key in fields:
            section.setdefault(key, sizes[key])
            if section[key] in (0, None):
                section[key] = sizes[key]
    return MCLMR(base, from_dict(MCLMRConfig, section, prefix="backbone.plugins.mclmr"))
