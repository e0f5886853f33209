"""Affinity Propagation over user-text embeddings: dense, sparse kNN-graph and k-means paths.

* dense: scikit-learn's ``AffinityPropagation`` on the precomputed cosine matrix. It holds about
  four N x N float64 matrices (~32 N^2 bytes), so it is the small-N path.
* knn: the same message passing (Frey & Dueck 2007) restricted to a sparse graph, each user's k
  nearest neighbours from faiss (exact inner product up to ``knn_exact_max`` points, IVF beyond)
  plus the self edge that carries the preference. Messages live on the (N, k+1) edges, so memory
  is O(N k). Hand-written because scikit-learn's AP takes dense matrices only. Pairs outside the
  graph have similarity -inf, the standard sparse-AP convention.
* kmeans: scikit-learn ``MiniBatchKMeans`` to a few thousand centroids, AP over the centroids, and
  the representative of a cluster is the real user nearest its exemplar centroid.

In every path a user joins the exemplar most similar to them (exact search over the exemplars),
as scikit-learn's ``predict`` does. Preference strings ('median', 'min', 'q0.05') are quantiles of
the pairwise cosine similarities: exact for up to 3,000 points, else of 500,000 seeded random pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrec.errors import ConfigError, LLMRecError
from llmrec.interests.config import ClusterConfig

SAMPLED_PAIRS = 500_000


@dataclass
class Clustering:
    labels: np.ndarray
    """(n,) cluster index of each row."""
    exemplars: np.ndarray
    """(C,) row of each cluster's representative."""
    similarity: np.ndarray
    """(n,) cosine similarity of each row to its representative."""
    method: str
    preference: float
    n_iter: int
    converged: bool
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.exemplars)


def pair_similarities(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Off-diagonal cosine similarities (all pairs for small n, else seeded random pairs)."""
    n = len(x)
    if n < 2:
        raise LLMRecError(f"clustering needs at least 2 users, got {n}")
    if n <= 3000:
        s = x @ x.T
        return s[~np.eye(n, dtype=bool)]
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, SAMPLED_PAIRS), rng.integers(0, n, SAMPLED_PAIRS)
    i, j = i[i != j], j[i != j]
    step = 20_000  # chunks: gathering all pairs at once would take ~1.5 GB at 384 dims
    return np.concatenate([np.einsum("nd,nd->n", x[i[s:s + step]], x[j[s:s + step]]) for s in range(0, len(i), step)])


def resolve_preference(pref: float | str, x: np.ndarray, *, seed: int = 0) -> float:
    if isinstance(pref, (int, float)):
        return float(pref)
    text = str(pref).strip().lower()
    try:
        return float(text)  # '-10' from a command line
    except ValueError:
        pass
    if text == "median":
        q = 0.5
    elif text == "min":
        q = 0.0
    elif text.startswith("q"):
        try:
            q = float(text[1:])
        except ValueError:
            q = -1.0
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"cluster.preference: {pref!r} is not a quantile q0..q1 (e.g. 'q0.05')")
    else:
        raise ConfigError(f"cluster.preference: {pref!r}; give a number, 'median', 'min' or 'q0.05'")
    return float(np.quantile(pair_similarities(x, seed=seed), q))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise LLMRecError(f"row {int(np.argmax(norms[:, 0] == 0))} has a zero embedding")
    return x / norms


def assign(x: np.ndarray, exemplars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most similar exemplar (index into ``exemplars``) and that similarity."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x[exemplars])
    sim, idx = index.search(x, 1)
    labels, sim = idx[:, 0].astype(np.int64), sim[:, 0]
    labels[exemplars] = np.arange(len(exemplars))  # an exemplar is its own cluster, even on ties
    sim[exemplars] = 1.0
    return labels, sim.astype(np.float32)


def knn_graph(x: np.ndarray, k: int, cfg: ClusterConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) neighbour ids (self excluded; -1 where none was found) and their cosine similarities."""
    import faiss

    n, d = x.shape
    k = min(k, n - 1)
    if n <= cfg.knn_exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(cfg.seed)
        index.train(x[rng.choice(n, min(n, 64 * nlist), replace=False)])
        index.nprobe = cfg.ivf_nprobe
    index.add(x)
    sim, ids = index.search(x, k + 1)
    not_self = ids != np.arange(n)[:, None]
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]  # first k non-self hits, in rank order
    return np.take_along_axis(ids, order, 1), np.take_along_axis(sim, order, 1)


def sparse_affinity_propagation(nbr: np.ndarray, sim: np.ndarray, preference: float, cfg: ClusterConfig
                                ) -> tuple[np.ndarray, int, bool]:
    """AP messages on a graph. ``nbr``/``sim``: (N, k) neighbours (-1 = none) and similarities.
    Returns exemplar rows, iterations run, converged."""
    n = len(nbr)
    rows = np.arange(n)
    valid = nbr >= 0
    targets = np.concatenate([rows[:, None], np.where(valid, nbr, rows[:, None])], 1)  # (N, m), col 0 = self
    s = np.concatenate([np.full((n, 1), preference), np.where(valid, sim, -np.inf)], 1).astype(np.float64)
    rng = np.random.default_rng(cfg.seed)
    finite = np.isfinite(s)
    s[finite] += 1e-9 * rng.standard_normal(int(finite.sum()))  # break ties, as scikit-learn does
    r = np.zeros_like(s)
    a = np.zeros_like(s)
    history = np.zeros((cfg.convergence_iter, n), dtype=bool)
    flat_targets = targets.ravel()
    damp = cfg.damping
    it, converged = 0, False
    for it in range(1, cfg.max_iter + 1):
        a_s = a + s
        best = np.argmax(a_s, 1)
        first = a_s[rows, best]
        a_s[rows, best] = -np.inf
        second = a_s.max(1)
        new_r = s - first[:, None]
        new_r[rows, best] = s[rows, best] - second
        new_r[~np.isfinite(s)] = -np.inf
        r = damp * r + (1 - damp) * np.where(np.isfinite(new_r), new_r, -1e30)
        rp = np.maximum(r, 0)
        rp[:, 0] = r[:, 0]  # the self responsibility counts with its sign
        colsum = np.bincount(flat_targets, weights=rp.ravel(), minlength=n)  # (N,)
        new_a = colsum[targets] - rp
        self_a = new_a[:, 0].copy()
        new_a = np.minimum(new_a, 0)
        new_a[:, 0] = self_a
        a = damp * a + (1 - damp) * new_a
        is_ex = (a[:, 0] + r[:, 0]) > 0
        history[it % cfg.convergence_iter] = is_ex
        if it >= cfg.convergence_iter:
            stable = (history == history[0]).all()
            if stable and is_ex.any():
                converged = True
                break
    return np.flatnonzero((a[:, 0] + r[:, 0]) > 0), it, converged


def _dense(x: np.ndarray, preference: float, cfg: ClusterConfig) -> tuple[np.ndarray, int, bool]:
    import warnings

    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    ap = AffinityPropagation(affinity="precomputed", preference=preference, damping=cfg.damping,
                             max_iter=cfg.max_iter, convergence_iter=cfg.convergence_iter, random_state=cfg.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ap.fit((x @ x.T).astype(np.float64))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return np.asarray(ap.cluster_centers_indices_, dtype=np.int64), int(ap.n_iter_), converged


def _knn(x: np.ndarray, preference: float, cfg: ClusterConfig) -> tuple[np.ndarray, int, bool]:
    nbr, sim = knn_graph(x, cfg.knn_k, cfg)
    return sparse_affinity_propagation(nbr, sim, preference, cfg)


def pick_method(n: int, cfg: ClusterConfig) -> str:
    if cfg.method != "auto":
        return cfg.method
    return "dense" if n <= cfg.dense_max_users else "knn" if n <= cfg.knn_max_users else "kmeans"


def cluster_users(embeddings: np.ndarray, cfg: ClusterConfig) -> Clustering:
    """Affinity Propagation over L2-normalised ``embeddings`` (n, d) with the configured path."""
    t0 = time.perf_counter()
    x = _normalise(embeddings)
    method = pick_method(len(x), cfg)
    extra: dict[str, Any] = {}
    if method in ("dense", "knn"):
        preference = resolve_preference(cfg.preference, x, seed=cfg.seed)
        exemplars, n_iter, converged = (_dense if method == "dense" else _knn)(x, preference, cfg)
    elif method == "kmeans":
        from sklearn.cluster import MiniBatchKMeans

        c = min(cfg.kmeans_centroids, len(x))
        km = MiniBatchKMeans(n_clusters=c, batch_size=max(4096, 3 * c), n_init=1, max_iter=10,
                             random_state=cfg.seed).fit(x)
        centroids = _normalise(km.cluster_centers_)
        preference = resolve_preference(cfg.preference, centroids, seed=cfg.seed)
        inner = _dense if c <= cfg.dense_max_users else _knn
        ex_centroids, n_iter, converged = inner(centroids, preference, cfg)
        import faiss

        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        _, nearest = index.search(centroids[ex_centroids], 1)  # the real user nearest each exemplar centroid
        exemplars = np.unique(nearest[:, 0].astype(np.int64))
        extra = {"centroids": c, "kmeans_inertia": float(km.inertia_)}
    else:
        raise ConfigError(f"cluster.method: {method!r} is not one of auto, dense, knn, kmeans")
    if len(exemplars) == 0:
        raise LLMRecError(f"Affinity Propagation ({method}) found no exemplar after {n_iter} iterations "
                          f"(preference {preference:.4f}): raise cluster.damping or cluster.max_iter")
    labels, sim = assign(x, exemplars)
    return Clustering(labels=labels, exemplars=exemplars, similarity=sim, method=method, preference=preference,
                      n_iter=n_iter, converged=converged, seconds=time.perf_counter() - t0, extra=extra)
