"""BLADE's behaviour-level augmentations and the contrastive loss between two augmented views.

Only behaviour sets change; item ids are never touched. Sets are handled as (T, |B|) bool
membership of the T real steps of a batch. The paper leaves these details open; our choices:

* Statistics: the co-occurrence matrix ``M[i, j] = P(j present | i present)`` (zero diagonal)
  and each behaviour's frequency are counted over the real steps of the current training batch,
  a sample of the training windows, so the model holds no dataset-level state and no held-out
  step is ever counted.
* ``ratio`` (the paper's rho) is the probability that a step is touched by the augmentation.
* Co-occurrence addition: a touched step adds ONE missing behaviour sampled from ``p = b . M``
  (renormalised over the missing ones); a step with nothing co-occurring is left alone.
* Frequency masking: each behaviour of a touched step is removed with probability equal to its
  frequency (frequent behaviours go more often).
* Auxiliary flipping: a touched step flips the bit of one auxiliary behaviour (any behaviour but
  the target), chosen uniformly.
* An augmentation that would empty a set keeps the step's original set (empty means padding).
* Each sequence of a view gets one augmentation drawn uniformly from the enabled ones
  (the CL4SRec recipe); the two views are drawn independently.
* The contrastive loss is NT-Xent (SimCLR): cosine similarity, temperature tau, the other
  2B - 2 views of the batch as negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmrec.backbones.layers import from_bits, to_bits

AUGMENTATIONS = ("cooccurrence", "masking", "flipping")


def behavior_stats(bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, n) membership of real steps -> (co-occurrence M (n, n) with zero diagonal, frequency (n,))."""
    b = bits.float()
    counts = b.T @ b  # (n, n): steps holding both i and j
    present = counts.diagonal().clone()
    m = counts / present.clamp(min=1).unsqueeze(1)
    m.fill_diagonal_(0)
    return m, present / max(bits.size(0), 1)


def _keep_nonempty(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(new.any(-1, keepdim=True), new, old)


def cooccurrence_add(bits: torch.Tensor, m: torch.Tensor, ratio: float) -> torch.Tensor:
    p = (bits.float() @ m).masked_fill(bits, 0.0)  # (T, n): missing behaviours only
    touch = (torch.rand(bits.size(0), device=bits.device) < ratio) & (p.sum(-1) > 0)
    out = bits.clone()
    rows = touch.nonzero().squeeze(-1)
    if len(rows):
        pick = torch.multinomial(p[rows], 1).squeeze(-1)
        out[rows, pick] = True
    return out


def frequency_mask(bits: torch.Tensor, freq: torch.Tensor, ratio: float) -> torch.Tensor:
    touch = torch.rand(bits.size(0), 1, device=bits.device) < ratio
    drop = touch & bits & (torch.rand(bits.shape, device=bits.device) < freq)
    return _keep_nonempty(bits & ~drop, bits)


def auxiliary_flip(bits: torch.Tensor, auxiliary: torch.Tensor, ratio: float) -> torch.Tensor:
    """``auxiliary``: (n,) bool, the behaviours that may flip."""
    choices = auxiliary.nonzero().squeeze(-1)
    if not len(choices):
        return bits
    T = bits.size(0)
    touch = torch.rand(T, device=bits.device) < ratio
    which = choices[torch.randint(len(choices), (T,), device=bits.device)]
    flip = F.one_hot(which, bits.size(1)).bool() & touch.unsqueeze(-1)
    return _keep_nonempty(bits ^ flip, bits)


def augment_view(behaviors: torch.Tensor, real: torch.Tensor, target_behavior: torch.Tensor, n: int,
                 methods: list[str], ratio: float) -> torch.Tensor:
    """One augmented copy of ``behaviors`` (B, L) bit masks; padding steps (``real`` False) stay 0.

    ``target_behavior`` (B,) bit masks: the behaviours outside it are the auxiliary ones.
    """
    bits = to_bits(behaviors[real], n)  # (T, n)
    m, freq = behavior_stats(bits)
    auxiliary = ~to_bits(target_behavior[:1], n)[0]
    versions = {"cooccurrence": lambda: cooccurrence_add(bits, m, ratio),
                "masking": lambda: frequency_mask(bits, freq, ratio),
                "flipping": lambda: auxiliary_flip(bits, auxiliary, ratio)}
    choice = torch.randint(len(methods), (behaviors.size(0),), device=behaviors.device)  # (B,)
    step_choice = choice.unsqueeze(1).expand_as(behaviors)[real]  # (T,)
    out = bits.clone()
    for i, name in enumerate(methods):
        sel = step_choice == i
        if sel.any():
            out[sel] = versions[name]()[sel]
    view = torch.zeros_like(behaviors)
    view[real] = from_bits(out)
    return view


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, D) two views of the same B sequences -> NT-Xent loss (positives: the other view)."""
    z = F.normalize(torch.cat([a, b]), dim=-1)  # (2B, D)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = a.size(0)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(a.device)
    return F.cross_entropy(sim, target)
