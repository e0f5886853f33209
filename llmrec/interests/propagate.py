"""ESIM propagation: every member inherits its representative's interests, weighted by similarity.

A member's interest weight is the LLM's weight times the cosine similarity of the member's text
embedding to its representative's (clipped at 0), so far members carry weaker interests. Interest
phrases are embedded with the sentence encoder into ``(U, K, D)`` plus ``(U, K)`` weights (0 =
padding, users without a text get none): the tensors the IBIM backbone reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.interests.cluster import Clustering


@dataclass
class Propagated:
    records: list[dict]
    """One per user (all users): user, index, has_text, cluster, representative, similarity, status,
    interests [{interest, weight, llm_weight}], history (the user's own text, when given)."""
    embeddings: np.ndarray
    """(U, K, D) float32 interest phrase embeddings (zeros where weight is 0)."""
    weights: np.ndarray
    """(U, K) float32 propagated weights."""


def inherit(phrases: list[str], llm_weights: list[float], sim: float) -> tuple[list[dict], list[float]]:
    """A member's interests from an answer: each LLM weight times the member's similarity (clipped at 0)."""
    weights = [w * max(sim, 0.0) for w in llm_weights]
    records = [{"interest": p, "weight": round(w, 6), "llm_weight": lw}
               for p, w, lw in zip(phrases, weights, llm_weights)]
    return records, weights


def propagate(user_vocab: list[str], text_users: np.ndarray, clustering: Clustering, results: dict[str, dict],
              *, k: int, encoder, texts: list[str] | None = None) -> Propagated:
    """``results``: job output by representative's user id (``parsed`` holds {"interests": [...]})."""
    n_users = len(user_vocab)
    phrases = sorted({i["interest"] for r in results.values() for i in (r["parsed"] or {}).get("interests", [])})
    phrase_emb = encoder.encode(phrases) if phrases else np.zeros((0, encoder.dim), np.float32)
    row_of = {p: j for j, p in enumerate(phrases)}
    emb = np.zeros((n_users, k, phrase_emb.shape[1]), dtype=np.float32)
    weights = np.zeros((n_users, k), dtype=np.float32)
    records = [{"user": user_vocab[u], "index": u, "has_text": False, "cluster": None, "representative": None,
                "similarity": None, "status": "no_text", "interests": []} for u in range(n_users)]
    for row, u in enumerate(text_users):
        c = int(clustering.labels[row])
        rep = int(text_users[clustering.exemplars[c]])
        sim = float(clustering.similarity[row])
        res = results.get(user_vocab[rep])
        rec = records[u]
        rec.update(has_text=True, cluster=c, representative=user_vocab[rep], similarity=round(sim, 6))
        if texts is not None:
            rec["history"] = texts[row]
        if res is None:
            rec["status"] = "pending"
            continue
        rec["status"] = res["status"] if rep == u else "inherited"
        answer = res["parsed"]["interests"][:k]
        phrases = [it["interest"] for it in answer]
        rec["interests"], w = inherit(phrases, [it["weight"] for it in answer], sim)
        for j, phrase in enumerate(phrases):
            emb[u, j] = phrase_emb[row_of[phrase]]
        weights[u, :len(w)] = w
    return Propagated(records=records, embeddings=emb, weights=weights)
