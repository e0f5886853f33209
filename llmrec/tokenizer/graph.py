"""LightGCN over the user-item graph (He et al. 2020), with torch.sparse propagation.

Nodes: users 0..U-1, then items (item id i in 1..N is node U + i - 1). The adjacency is the
symmetric normalisation D^-1/2 A D^-1/2 of the bipartite training graph, without self loops;
the output is the mean of layers 0..L, as in LightGCN and BEAT.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """(U+N, U+N) sparse CSR float32 from training edges (users 0-based, items 1-based)."""
    n = n_users + n_items
    rows = np.concatenate([users, n_users + items - 1])
    cols = np.concatenate([n_users + items - 1, users])
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    inv = np.zeros(n)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    vals = (inv[rows] * inv[cols]).astype(np.float32)
    adj = torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows, cols])), torch.as_tensor(vals), (n, n),
                                  check_invariants=False)
    with warnings.catch_warnings():  # "CSR support is in beta": CSR spmm is what makes this fast on CPU
        warnings.simplefilter("ignore", UserWarning)
        return adj.coalesce().to_sparse_csr()


class _SymmetricSpMM(torch.autograd.Function):
    """adj @ x for a symmetric sparse adj: the backward is adj @ grad again, which skips the
    transpose-to-CSR that torch.sparse.mm's generic backward builds on every step."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adj @ grad


class LightGCN(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int):
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)

    def forward(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns users (U, D) and items (N+1, D); row 0 of items is a zero padding row."""
        x = self.embedding.weight
        layers = [x]
        for _ in range(self.n_layers):
            x = _SymmetricSpMM.apply(adj, x)  # adj is symmetric by construction
            layers.append(x)
        out = torch.stack(layers).mean(0)  # (U+N, D)
        users, items = out[: self.n_users], out[self.n_users:]
        return users, torch.cat([items.new_zeros(1, items.size(1)), items])
