"""SASRec on MovieLens-100k: llmrec vs RecBole 1.2.1, side by side in one run.

Both systems read one identical exported leave-one-out split (RecBole atomic files whose
timestamps are the rank of each interaction in llmrec's chronological order, so RecBole's own
leave-one-out split reproduces llmrec's exactly; checked before training), use the same model
size and protocol (full ranking, history masked), and run one after the other in child processes
on this machine. Writes results/sasrec_vs_recbole.{json,md,png}. Child results are kept, so an
interrupted run resumes where it stopped (``--fresh`` starts over).

    python benchmarks/sasrec_vs_recbole.py [--seeds 0 1 2] [--recbole-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.config import DataConfig  # noqa: E402
from llmrec.data.prepare import TEST, VALID, prepare  # noqa: E402
from llmrec.eval.bootstrap import paired_bootstrap  # noqa: E402


def export_split(work: Path) -> Path:
    """Write llmrec's ml-100k order as RecBole atomic files; verify both splits agree."""
    data = prepare(DataConfig(source="ml-100k", split="loo", cache_dir=str(work / "cache")))
    folder = work / "ml-100k-loo"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for row in range(len(data.item)):  # row order = user, then chronological (ties: input order)
        lines.append(f"{data.user_vocab[data.user[row]]}\t{data.item_vocab[data.item[row]]}\t{row}")
    (folder / "ml-100k-loo.inter").write_text("\n".join(lines) + "\n")
    again = prepare(DataConfig(source="recbole", path=str(folder), split="loo", cache_dir=str(work / "cache")))
    for s in (VALID, TEST):
        a = {(data.user_vocab[u], data.item_vocab[i]) for u, i in zip(data.user[data.split == s], data.item[data.split == s])}
        b = {(again.user_vocab[u], again.item_vocab[i]) for u, i in zip(again.user[again.split == s], again.item[again.split == s])}
        assert a == b, "exported split differs from llmrec's own"
    return folder


def child(script: str, folder: Path, out: Path, seed: int, epochs: int, patience: int, fresh: bool) -> dict:
    if out.exists() and not fresh:
        print(f"  reusing {out.name}")
        return json.loads(out.read_text())
    t = time.perf_counter()
    cmd = [sys.executable, str(HERE / script), str(folder), str(out), str(seed), str(epochs), str(patience)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)  # RecBole writes log folders into cwd
    if done.returncode != 0:
        raise SystemExit(f"{script} seed {seed} failed:\n{done.stderr[-4000:]}")
    print(f"  {script} seed {seed}: {time.perf_counter() - t:.0f} s")
    return json.loads(out.read_text())


def seconds_to_reach(log: list[dict], target: float) -> float | None:
    for r in log:
        if r["valid_ndcg@10"] >= target:
            return r["elapsed_seconds"]
    return None


def mean_se(values: list[float]) -> tuple[float, float]:
    m = statistics.mean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return m, se


def user_se(run: dict) -> float:
    values = np.asarray(run["per_user"]["ndcg@10"])
    return float(values.std(ddof=1) / len(values) ** 0.5)


def per_user_mean(runs: list[dict], users: list[str], key: str) -> np.ndarray:
    rows = []
    for r in runs:
        lookup = dict(zip(r["per_user"]["users"], r["per_user"][key]))
        rows.append([lookup[u] for u in users])
    return np.mean(rows, axis=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="llmrec seeds")
    p.add_argument("--recbole-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=200, help="epoch cap for both")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience for both")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--fresh", nargs="*", choices=["llmrec", "recbole"], default=[],
                   help="rerun these systems' children even where results exist (all when given bare)")
    args = p.parse_args()
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    folder = export_split(work)
    print("split exported and checked:", folder)
    fresh = set(args.fresh) if args.fresh else ({"llmrec", "recbole"} if args.fresh == [] and
                                                 "--fresh" in sys.argv else set())
    llm = [child("llmrec_child.py", folder, work / f"llmrec-{s}.json", s, args.epochs, args.patience,
                 "llmrec" in fresh) for s in args.seeds]
    rb = [child("recbole_child.py", folder, work / f"recbole-{s}.json", s, args.epochs, args.patience,
                "recbole" in fresh) for s in args.recbole_seeds]

    rb_best = statistics.mean(r["best_valid_ndcg@10"] for r in rb)
    rb_to_best = statistics.median(r["seconds_to_best"] for r in rb)
    reach = [seconds_to_reach(r["log"], rb_best) for r in llm]
    reached = [x for x in reach if x is not None]
    speedup = rb_to_best / statistics.median(reached) if len(reached) == len(reach) else None
    users = sorted(set(llm[0]["per_user"]["users"]) & set(rb[0]["per_user"]["users"]))
    boot = {k: paired_bootstrap(per_user_mean(rb, users, k), per_user_mean(llm, users, k), seed=0)
            for k in ("ndcg@10", "hr@10")}
    llm_ndcg, llm_se = mean_se([r["test"]["ndcg@10"] for r in llm])
    rb_ndcg, rb_se = mean_se([r["test"]["ndcg@10"] for r in rb])

    def col(runs: list[dict], key: str, fn=statistics.median):
        return fn([r[key] for r in runs])

    summary = {
        "dataset": "MovieLens-100k (recbole wheel), one exported leave-one-out split, full ranking",
        "model": "SASRec, 2 layers, hidden 64, 2 heads, inner 256, max length 50, dropout 0.2, CE loss, lr 1e-3",
        "batch": "llmrec: 128 windows of 50 (loss at every position); RecBole: 256 prefix samples",
        "seeds": {"llmrec": args.seeds, "recbole": args.recbole_seeds},
        "recbole_best_valid_ndcg@10_mean": rb_best,
        "recbole_seconds_to_best_median": rb_to_best,
        "llmrec_seconds_to_recbole_best": reach,
        "speedup_to_recbole_best": speedup,
        "test_ndcg@10": {"llmrec_mean": llm_ndcg, "llmrec_se": llm_se, "recbole_mean": rb_ndcg, "recbole_se": rb_se},
        "paired_bootstrap_llmrec_minus_recbole": boot,
        "runs": [{k: v for k, v in r.items() if k != "per_user"} for r in llm + rb],
        "machine": {"cpus": __import__("os").cpu_count(), "torch_threads": __import__("torch").get_num_threads()},
    }
    (out / "sasrec_vs_recbole.json").write_text(json.dumps(summary, indent=1))

    rows = [
        ("seconds to own best valid NDCG@10 (median)", col(llm, "seconds_to_best"), col(rb, "seconds_to_best"), "{:.1f}"),
        ("epoch of best valid NDCG@10 (median)", col(llm, "best_epoch"), col(rb, "best_epoch"), "{:.0f}"),
        ("best valid NDCG@10 (mean)", col(llm, "best_valid_ndcg@10", statistics.mean), rb_best, "{:.4f}"),
        ("test NDCG@10 (mean over seeds)", llm_ndcg, rb_ndcg, "{:.4f}"),
        ("test NDCG@10 standard error over seeds", llm_se, rb_se, "{:.4f}"),
        ("test NDCG@10 standard error over users (first seed)", user_se(llm[0]), user_se(rb[0]), "{:.4f}"),
        ("test HR@10 (mean)", statistics.mean(r["test"]["hr@10"] for r in llm),
         statistics.mean(r["test"]["hr@10"] for r in rb), "{:.4f}"),
        ("test NDCG@20 (mean)", statistics.mean(r["test"]["ndcg@20"] for r in llm),
         statistics.mean(r["test"]["ndcg@20"] for r in rb), "{:.4f}"),
        ("test HR@20 (mean)", statistics.mean(r["test"]["hr@20"] for r in llm),
         statistics.mean(r["test"]["hr@20"] for r in rb), "{:.4f}"),
        ("full-ranking test evaluation, seconds (median of 5)", col(llm, "test_eval_seconds_median"),
         col(rb, "test_eval_seconds_median"), "{:.3f}"),
        ("seconds per epoch incl. validation (median)*", col(llm, "seconds_per_epoch_median"),
         col(rb, "seconds_per_epoch_median"), "{:.2f}"),
        ("data set-up seconds (median)", col(llm, "setup_seconds"), col(rb, "setup_seconds"), "{:.1f}"),
        ("peak RSS, MB (max)", col(llm, "peak_rss_mb", max), col(rb, "peak_rss_mb", max), "{:.0f}"),
    ]
    md = ["| measure | llmrec | RecBole 1.2.1 | ratio RecBole / llmrec |", "|---|---|---|---|"]
    for name, a, b, fmt in rows:
        ratio = f"{b / a:.2f}" if a else "-"
        md.append(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    sp = f"{speedup:.1f}x" if speedup else "not reached by every llmrec seed"
    md += ["",
           f"llmrec reaches RecBole's best validation NDCG@10 ({rb_best:.4f}) after "
           + ", ".join("-" if x is None else f"{x:.1f} s" for x in reach)
           + f" (seeds {args.seeds}); RecBole needs {rb_to_best:.1f} s (median): **{sp} sooner**.",
           "",
           f"Paired bootstrap over {boot['ndcg@10']['n']} users (llmrec minus RecBole, per-user values "
           f"averaged over seeds, 2000 resamples): NDCG@10 {boot['ndcg@10']['mean_diff']:+.4f} "
           f"[{boot['ndcg@10']['ci_low']:+.4f}, {boot['ndcg@10']['ci_high']:+.4f}], HR@10 "
           f"{boot['hr@10']['mean_diff']:+.4f} [{boot['hr@10']['ci_low']:+.4f}, {boot['hr@10']['ci_high']:+.4f}].",
           "",
           "*Seconds per epoch are not comparable across training formulations: RecBole trains every "
           "prefix of a user's sequence as its own sample (~98k samples per epoch), llmrec computes the "
           "loss at every position of 50-item windows (one pass over each user's history per epoch).",
           f"Seeds: llmrec {args.seeds}, RecBole {args.recbole_seeds}; early-stopping patience {args.patience} "
           "on validation NDCG@10 for both; times are wall-clock on "
           f"{summary['machine']['cpus']} CPU cores, {summary['machine']['torch_threads']} torch threads."]
    (out / "sasrec_vs_recbole.md").write_text("\n".join(md) + "\n")
    plot(llm, rb, out / "sasrec_vs_recbole.png")
    print("\n".join(md))


def plot(llm: list[dict], rb: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for runs, color, name in ((llm, "tab:blue", "llmrec"), (rb, "tab:orange", "RecBole")):
        for i, r in enumerate(runs):
            ax.plot([x["elapsed_seconds"] for x in r["log"]], [x["valid_ndcg@10"] for x in r["log"]],
                    color=color, alpha=0.8, label=name if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock training seconds (log scale)")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title("SASRec on MovieLens-100k, same split and model size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
