"""A control for ESIM: the same clusters carrying another cluster's interests.

``shuffle_clusters`` rewrites a finished artifact so that every member of cluster c inherits the
LLM answer of cluster pi(c) instead of its own representative's, pi a random cyclic permutation
(Sattolo's algorithm), so no cluster keeps its own answer. What stays: the clustering (which users
share phrases, what the alignment loss treats as non-negatives), each member's similarity weight,
the answers themselves and the number of users holding interests. What goes: the match between a
user's history and the phrases. If a backbone gains as much from the shuffled artifact as from the
real one, the gain does not come from what the LLM said about the user.

Only numpy and json: the phrase embeddings are copied from the representatives' own rows, so no
encoder or LLM is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmrec.errors import DataError
from llmrec.interests.job import save_artifact
from llmrec.interests.propagate import Propagated, inherit

ANSWERED = ("ok", "repaired", "fallback")


def sattolo(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` with one cycle (so no fixed point, n >= 2)."""
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffle_clusters(run: str | Path, out: str | Path, *, seed: int = 0) -> dict:
    """Write ``out``/artifact: ``run``'s artifact with answers moved between clusters; returns a summary."""
    src = Path(run) / "artifact"
    if not (src / "manifest.json").exists():
        raise DataError(f"{src / 'manifest.json'} does not exist: finish `llmrec interests extract` for {run} first")
    records = [json.loads(line) for line in (src / "interests.jsonl").read_text().splitlines()]
    emb, weights = np.load(src / "interest_emb.npy"), np.load(src / "interest_weight.npy")
    manifest = json.loads((src / "manifest.json").read_text())
    if manifest.get("control"):
        raise DataError(f"{src} is already a control ({manifest['control']['kind']}); shuffle the original run")
    # each answered cluster's answer: its representative, phrases, LLM weights and embedding rows
    answer: dict[int, tuple[str, list[dict], np.ndarray]] = {}
    for r in records:
        if r["status"] in ANSWERED and r["user"] == r["representative"]:
            answer[int(r["cluster"])] = (r["user"], r["interests"], emb[r["index"], :len(r["interests"])])
    pending = sum(r["status"] == "pending" for r in records)
    if pending:
        raise DataError(f"{src / 'interests.jsonl'}: {pending} users are pending; the extraction is unfinished")
    clusters = sorted(answer)
    if len(clusters) < 2:
        raise DataError(f"{src}: {len(clusters)} answered cluster(s); a shuffle needs at least 2")
    perm = sattolo(len(clusters), np.random.default_rng(seed))
    source_of = {c: clusters[perm[i]] for i, c in enumerate(clusters)}
    new_emb, new_w = np.zeros_like(emb), np.zeros_like(weights)
    out_records = []
    for r in records:
        r = dict(r)
        if r["has_text"]:
            donor = source_of[int(r["cluster"])]
            rep, phrases, rows = answer[donor]
            # the member's own similarity weights the donor's answer, as propagate() weights its own
            r["interests"], w = inherit([it["interest"] for it in phrases], [it["llm_weight"] for it in phrases],
                                        float(r["similarity"]))
            r.update(answer_from_cluster=donor, answer_from=rep)
            new_emb[r["index"], :len(w)] = rows
            new_w[r["index"], :len(w)] = w
        out_records.append(r)
    summary = {"kind": "shuffled_clusters", "seed": seed, "source": str(run), "clusters_shuffled": len(clusters),
               "users_with_interests": int((new_w.sum(1) > 0).sum())}
    manifest = {**manifest, "control": summary}
    save_artifact(Path(out) / "artifact", Propagated(out_records, new_emb, new_w), manifest)
    return summary
