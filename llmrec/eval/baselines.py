"""Training-free reference rankings, scored by the same evaluator as the backbones."""

from __future__ import annotations

import numpy as np
import torch


class RecentItems(torch.nn.Module):
    """Rank the user's own recent items first, latest highest, then every other item by training
    popularity. The window is the model input (``batch['items']``: the last ``max_len`` training
    events, any behaviour), so it sees what a sequential backbone sees. A repeat-consumption
    reference: where a buy usually follows a click of the same item, it is hard to beat."""

    def __init__(self, popularity: np.ndarray, *, window: bool = True):
        """``window=False``: popularity alone (most-popular ranking)."""
        super().__init__()
        self.window = window
        pop = torch.as_tensor(np.asarray(popularity), dtype=torch.float)
        self.register_buffer("prior", pop / (pop.max() + 1), persistent=False)  # in [0, 1)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = batch["items"]  # (B, L), left-padded with 0
        B, L = items.shape
        scores = self.prior.expand(B, -1).clone()
        # position 1..L plus 1 keeps every windowed item above the prior; amax keeps the latest
        position = torch.arange(2, L + 2, dtype=torch.float, device=items.device).expand(B, -1)
        if self.window:
            scores.scatter_reduce_(1, items, position, reduce="amax")
        scores[:, 0] = float("-inf")
        return scores
