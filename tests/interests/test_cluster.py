"""Affinity Propagation paths: the sparse message passing equals scikit-learn on a full graph,
the scalable paths recover planted clusters, preferences resolve as documented."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.errors import ConfigError, LLMRecError
from llmrec.interests.cluster import (
    assign,
    cluster_users,
    knn_graph,
    pick_method,
    resolve_preference,
    sparse_affinity_propagation,
)
from llmrec.interests.config import ClusterConfig


def blobs(n_blobs: int = 6, per: int = 40, dim: int = 24, noise: float = 0.25, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_blobs, dim))
    x = np.concatenate([c + noise * rng.standard_normal((per, dim)) for c in centers])
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(n_blobs), per)


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    return sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / len(labels)


def test_sparse_ap_on_the_full_graph_equals_scikit_learn():
    x, _ = blobs(seed=1)
    dense = cluster_users(x, ClusterConfig(method="dense", preference="q0.1"))
    sparse = cluster_users(x, ClusterConfig(method="knn", knn_k=len(x) - 1, preference="q0.1"))
    assert dense.converged and sparse.converged
    assert sorted(dense.exemplars) == sorted(sparse.exemplars)
    assert dense.preference == sparse.preference


@pytest.mark.parametrize("method", ["dense", "knn", "kmeans"])
def test_every_path_recovers_planted_clusters(method):
    x, truth = blobs()
    cl = cluster_users(x, ClusterConfig(method=method, knn_k=15, kmeans_centroids=60, preference="median"))
    assert cl.method == method
    assert purity(cl.labels, truth) == 1.0
    assert cl.n_clusters >= 6
    # every representative is a real row of its own cluster, with similarity 1 to itself
    assert (cl.labels[cl.exemplars] == np.arange(cl.n_clusters)).all()
    assert np.allclose(cl.similarity[cl.exemplars], 1.0)
    # each row joins the most similar representative
    sims = x @ x[cl.exemplars].T
    assert (sims.argmax(1) == cl.labels).mean() > 0.99


def test_lower_preference_gives_fewer_clusters():
    x, _ = blobs(n_blobs=4, per=30, noise=0.6)
    many = cluster_users(x, ClusterConfig(method="dense", preference="median")).n_clusters
    few = cluster_users(x, ClusterConfig(method="dense", preference="min")).n_clusters
    assert few < many


def test_preference_strings_are_quantiles_of_pair_similarities():
    x, _ = blobs(n_blobs=2, per=10)
    s = x @ x.T
    off = s[~np.eye(len(x), dtype=bool)]
    assert resolve_preference("median", x) == pytest.approx(np.median(off), abs=1e-6)
    assert resolve_preference("min", x) == pytest.approx(off.min(), abs=1e-6)
    assert resolve_preference("q0.25", x) == pytest.approx(np.quantile(off, 0.25), abs=1e-6)
    assert resolve_preference(-10, x) == -10.0
    for bad in ("q1.5", "qx", "lowest"):
        with pytest.raises(ConfigError, match="cluster.preference"):
            resolve_preference(bad, x)


def test_sparse_ap_by_hand_on_two_stars():
    # two groups {0,1,2} and {3,4,5}, each with a hub (0, 3) close to both leaves while the leaves
    # are far from each other: the hubs are the exemplars (net similarity 2 x 0.9 - 0.5 beats all)
    nbr = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    sim = np.array([[0.9, 0.9], [0.9, 0.1], [0.9, 0.1], [0.9, 0.9], [0.9, 0.1], [0.9, 0.1]])
    ex, _, converged = sparse_affinity_propagation(nbr, sim, preference=-0.5, cfg=ClusterConfig())
    assert converged and ex.tolist() == [0, 3]


def test_knn_graph_excludes_self_and_is_sorted():
    x, _ = blobs(n_blobs=3, per=10)
    nbr, sim = knn_graph(x, 5, ClusterConfig())
    assert nbr.shape == (30, 5)
    assert not (nbr == np.arange(30)[:, None]).any()
    assert (np.diff(sim, axis=1) <= 1e-6).all()
    assert np.allclose(sim, np.take_along_axis(x @ x.T, nbr, 1), atol=1e-5)


def test_assign_keeps_exemplars_in_their_own_cluster_on_ties():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    labels, sim = assign(x, np.array([1, 2]))
    assert labels.tolist() == [0, 0, 1] and sim.tolist() == [1.0, 1.0, 1.0]


def test_auto_method_switches_by_size_and_bad_input_is_named():
    cfg = ClusterConfig(dense_max_users=10, knn_max_users=100)
    assert [pick_method(n, cfg) for n in (10, 11, 100, 101)] == ["dense", "knn", "knn", "kmeans"]
    x = np.ones((3, 4), dtype=np.float32)
    x[2] = 0
    with pytest.raises(LLMRecError, match="row 2 has a zero embedding"):
        cluster_users(x, ClusterConfig())
