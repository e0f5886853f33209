"""The ESIM batch job: user texts -> embeddings -> Affinity Propagation -> LLM for the
representatives (resumable) -> propagation -> artifact.

Out folder (``cfg.out_dir``)::

    user_emb.npy, user_emb.json     text embeddings + the key they were computed for (cache)
    clusters.npz, clusters.json     clustering + its key and stats (cache)
    llm_job.jsonl (+ .state.json)   one line per representative: answers, parsed interests, status
    artifact/                       written atomically once every representative is done:
        interests.jsonl             one line per user: cluster, representative, similarity, interests
        interest_emb.npy            (U, K, D) float32 phrase embeddings
        interest_weight.npy         (U, K) float32 propagated weights (0 = padding)
        manifest.json               provenance (model, prompt hash, clustering parameters, times) + stats

Every stage is keyed on its inputs, so a rerun recomputes only what changed, and a rerun of a
finished job rewrites the same artifact (only timestamps differ): the job is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import atomic_dir, atomic_file, write_text
from llmrec.interests.cluster import Clustering, cluster_users
from llmrec.interests.config import InterestsConfig

DEFAULT_SECONDS_PER_CALL = {"hf": 5.0, "vllm": 1.5}
"""Dry-run estimate when this job has no timing of its own yet: the order measured on this
project's 2-core CPU (benchmarks/results/esim.md); a GPU is far faster."""


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def embed_texts(texts: list[str], encoder_name: str, out: Path, *, separator: str = "\n",
                progress: bool = True) -> np.ndarray:
    from llmrec.interests.texts import for_encoder

    texts = [for_encoder(t, separator) for t in texts]
    key = _key(encoder_name, texts)
    meta = out / "user_emb.json"
    if meta.exists() and json.loads(meta.read_text()).get("key") == key and (out / "user_emb.npy").exists():
        return np.load(out / "user_emb.npy")
    from llmrec.llm.encoder import SentenceEncoder

    emb = SentenceEncoder(encoder_name).encode(texts, progress=progress)
    with atomic_file(out / "user_emb.npy") as tmp:
        with tmp.open("wb") as f:
            np.save(f, emb)
    write_text(meta, json.dumps({"key": key, "encoder": encoder_name, "n": len(texts), "created_at": _stamp()}))
    return emb


def load_or_cluster(emb: np.ndarray, cfg: InterestsConfig, out: Path) -> Clustering:
    key = _key(json.loads((out / "user_emb.json").read_text())["key"], asdict(cfg.cluster))
    meta = out / "clusters.json"
    if meta.exists() and (out / "clusters.npz").exists():
        info = json.loads(meta.read_text())
        if info.get("key") == key:
            z = np.load(out / "clusters.npz")
            return Clustering(labels=z["labels"], exemplars=z["exemplars"], similarity=z["similarity"],
                              **{k: info[k] for k in ("method", "preference", "n_iter", "converged", "seconds",
                                                      "extra")})
    cl = cluster_users(emb, cfg.cluster)
    with atomic_file(out / "clusters.npz") as tmp:
        with tmp.open("wb") as f:
            np.savez(f, labels=cl.labels, exemplars=cl.exemplars, similarity=cl.similarity)
    write_text(meta, json.dumps({"key": key, "method": cl.method, "preference": cl.preference, "n_iter": cl.n_iter,
                                 "converged": cl.converged, "seconds": cl.seconds, "extra": cl.extra,
                                 "n_clusters": cl.n_clusters, "params": asdict(cfg.cluster), "created_at": _stamp()}))
    return cl


def _estimate(out: Path, calls: int, backend: str) -> tuple[float, str]:
    summary = out / "llm_job.jsonl.summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        if s.get("calls") and s.get("seconds"):
            per = s["seconds"] / s["calls"]
            return calls * per, f"{per:.2f} s/call measured by this job's last run"
    per = DEFAULT_SECONDS_PER_CALL[backend]
    return calls * per, f"{per:.1f} s/call, the order measured on a 2-core CPU"


def run_job(cfg: InterestsConfig, *, dry_run: bool = False, limit: int | None = None, progress: bool = True,
            llm: Any = None, generate: Any = None) -> dict:
    """Run (or resume) the job; returns its stats. ``llm``/``generate`` inject a backend (tests)."""
    from llmrec.data.prepare import prepare
    from llmrec.interests.extract import prompt_copies, prompt_hash, refresh_fallbacks, run_extraction
    from llmrec.interests.texts import user_texts
    from llmrec.llm.jobs import read_results

    t0 = time.perf_counter()
    if llm is None and generate is None:  # --dry-run too: say now, not after clustering
        from llmrec.llm.catalog import require_installed

        require_installed(cfg.extract.llm, key="extract.llm")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare(cfg.data)
    texts = user_texts(data, cfg.texts)
    emb = embed_texts(texts.texts, cfg.texts.encoder, out, separator=cfg.texts.separator, progress=progress)
    cl = load_or_cluster(emb, cfg, out)
    reps = texts.users[cl.exemplars]
    history = dict(zip(texts.users.tolist(), texts.texts))
    records = [{"id": data.user_vocab[u], "history": history[int(u)]} for u in reps]
    history_by_id = {r["id"]: r["history"] for r in records}
    job_path = out / "llm_job.jsonl"
    done = {r["id"] for r in read_results(job_path)} if job_path.exists() else set()
    stats: dict[str, Any] = {
        "dataset": data.name, "users": data.n_users, "users_with_text": len(texts.users),
        "users_without_text": int(data.n_users - len(texts.users)), "min_titled": cfg.texts.min_titled,
        "clusters": cl.n_clusters, "cluster_method": cl.method, "preference": cl.preference,
        "ap_iterations": cl.n_iter, "ap_converged": cl.converged, "cluster_seconds": round(cl.seconds, 3),
        "representatives": len(records), "representatives_done": len(done & {r["id"] for r in records}),
        "calls_saved_factor": round(len(texts.users) / max(1, len(records)), 2)}
    todo = len(records) - stats["representatives_done"]
    if limit is not None:
        todo = min(todo, max(0, limit - stats["representatives_done"]))
    if dry_run:
        seconds, basis = _estimate(out, todo, cfg.extract.backend)
        return {**stats, "dry_run": True, "llm_calls_to_make": todo, "estimated_seconds": round(seconds, 1),
                "estimate_basis": basis, "llm": cfg.extract.llm, "backend": cfg.extract.backend}
    if cfg.extract.engine == "ray":
        from llmrec.interests.ray_engine import ray_generate

        generate = ray_generate(cfg.extract, records)
    summary = run_extraction(records, cfg.extract, str(job_path), generate=generate, llm=llm, limit=limit,
                             progress=progress)
    stats.update(representatives_done=min(len(records), summary.done_batches * cfg.extract.batch_size),
                 llm_calls=summary.calls, first_answer_failures=summary.failures, repaired=summary.repaired,
                 fallbacks=summary.fallbacks, resumed_from_batch=summary.resumed_from_batch,
                 llm_seconds=round(summary.seconds, 2), complete=summary.complete, llm=cfg.extract.llm,
                 backend=cfg.extract.backend, engine=cfg.extract.engine, prompt_hash=prompt_hash(cfg.extract))
    if summary.complete:
        results, changed = refresh_fallbacks(read_results(job_path), history_by_id, cfg.extract)
        stats.update(fallbacks_rederived=changed, fallbacks_final=sum(r["status"] == "fallback" for r in results),
                     prompt_copies=prompt_copies(results, history_by_id, cfg.extract))
        stats["artifact"] = str(write_artifact(cfg, data.user_vocab, texts, cl, results, stats))
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    write_text(out / "stats.json", json.dumps(stats, indent=1, default=str))
    return stats


def write_artifact(cfg: InterestsConfig, user_vocab: list[str], texts, cl: Clustering, results: list[dict],
                   stats: dict) -> Path:
    from llmrec.config import to_dict
    from llmrec.interests.propagate import propagate
    from llmrec.llm.encoder import SentenceEncoder

    prop = propagate(user_vocab, texts.users, cl, {r["id"]: r for r in results}, k=cfg.extract.k,
                     encoder=SentenceEncoder(cfg.texts.encoder), texts=texts.texts)
    created = [r["created_at"] for r in results]
    manifest = {
        "format": "llmrec-esim-1", "created_at": _stamp(), "config": to_dict(cfg),
        "llm": cfg.extract.llm, "backend": cfg.extract.backend, "prompt": cfg.extract.prompt,
        "prompt_hash": stats["prompt_hash"], "user_text_template_hash": texts.template_hash,
        "encoder": cfg.texts.encoder, "clustering": {"method": cl.method, "preference": cl.preference,
                                                     "damping": cfg.cluster.damping, "n_clusters": cl.n_clusters,
                                                     "iterations": cl.n_iter, "converged": cl.converged},
        "extraction_started_at": min(created, default=None), "extraction_finished_at": max(created, default=None),
        "status_counts": {s: sum(r["status"] == s for r in prop.records) for s in
                          ("ok", "repaired", "fallback", "inherited", "no_text", "pending")},
        "stats": {k: v for k, v in stats.items() if k != "artifact"}}
    return save_artifact(Path(cfg.out_dir) / "artifact", prop, manifest)


def save_artifact(dest: Path, prop, manifest: dict) -> Path:
    """Write a propagated result as an artifact folder, atomically (the format training reads)."""
    with atomic_dir(dest) as tmp:
        with (tmp / "interests.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in prop.records)
        np.save(tmp / "interest_emb.npy", prop.embeddings)
        np.save(tmp / "interest_weight.npy", prop.weights)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return dest


def show_user(run: str | Path, user: str) -> dict:
    """The artifact line of one user (by the dataset's own user id)."""
    from llmrec.errors import DataError

    path = Path(run) / "artifact" / "interests.jsonl"
    if not path.exists():
        raise DataError(f"{path} does not exist: run `llmrec interests extract` to completion first")
    with path.open() as f:
        for line in f:
            rec = json.loads(line)
            if rec["user"] == str(user):
                return rec
    raise DataError(f"user {user!r} is not in {path}")


def read_records(run: str | Path) -> dict[str, dict]:
    """The artifact's line per user, by the dataset's own user id ({} when the run has no artifact)."""
    path = Path(run) / "artifact" / "interests.jsonl"
    if not path.exists():
        return {}
    return {str(rec["user"]): rec for rec in map(json.loads, path.read_text().splitlines())}


def user_interests(records: dict[str, dict], user: str) -> dict:
    """One user's phrases and statuses: ``status`` is the user's own (``inherited`` for a cluster
    member), ``answer`` the status of the LLM answer the phrases come from (the representative's)."""
    rec = records.get(user, {})
    status = rec.get("status", "none")
    rep = str(rec["representative"]) if rec.get("representative") is not None else None
    answer = records.get(rep, {}).get("status", "?") if status == "inherited" else status
    return {"phrases": [x["interest"] for x in rec.get("interests", [])], "status": status,
            "representative": rep, "answer": answer, "fallback": answer == "fallback",
            "cluster": rec.get("cluster")}
