"""Keep the finished runs of an ablation or selection folder in git, without their checkpoints.

A session's ``runs/`` does not outlive the session machine here, and some tables need more
core-hours than one session holds. Every finished run (a folder with results.json and metrics.jsonl:
an ablation's ``<backbone>/<variant>/seed<s>``, or a valid-only selection run of ``llmrec train``) is
copied without its ``*.safetensors`` into benchmarks/runs_kept/<name>/: what ``llmrec ablate``
reads to reuse a run (``llmrec.experiments.ablate.RUN_FILES``) and the run's results.md.
These are runs of tables still in progress, not results; the table is published once it is whole.

An ``llmrec interests extract`` folder (it has user_emb.json) keeps what its resume needs besides
the user embeddings, which are 34 MB on Beauty and recomputed from the same texts (their cache key
is the texts' hash, so the kept clustering and the LLM's recorded answers are reused as they are):
user_emb.json, clusters.{json,npz}, llm_job.jsonl with its state and summary, stats.json.

    python benchmarks/keep_runs.py runs/alibaba-mb                    # keep
    mkdir -p runs && cp -r benchmarks/runs_kept/alibaba-mb runs/      # restore, then rerun the ablate
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.atomic import atomic_file  # noqa: E402
from llmrec.experiments.ablate import RUN_FILES  # noqa: E402

KEPT = (*RUN_FILES, "results.md")  # what read_run needs, and the run's own table
# the job's state before its answers file: the file only grows past the state's committed byte
# count, and a resume cuts it back to that count (a file copied first could be shorter than a state
# copied after it). Without the state, a resume would start the answers over.
KEPT_INTERESTS = ("user_emb.json", "clusters.json", "clusters.npz", "llm_job.jsonl.state.json", "llm_job.jsonl",
                  "llm_job.jsonl.summary.json", "stats.json")


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).exists():
            with atomic_file(dst / name) as tmp:  # a crash leaves the old copy or the new one
                shutil.copyfile(src / name, tmp)


def finished_runs(folder: Path) -> list[Path]:
    """Folders of the finished training runs under ``folder``: results.json beside metrics.jsonl (an
    ablation's own summary results.json has none); ablation cells and selection runs alike."""
    return sorted(p.parent for p in folder.rglob("results.json") if (p.parent / "metrics.jsonl").exists())


def keep(src: Path, dst: Path) -> list[Path]:
    """Copies each finished run under ``src`` (or an interests job's resumable state) to the same
    place under ``dst``; returns the runs kept."""
    if (src / "user_emb.json").exists():
        _copy(src, dst, KEPT_INTERESTS)
        return [src]
    done = finished_runs(src)
    for run in done:
        _copy(run, dst / run.relative_to(src), KEPT)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="an `llmrec ablate --out` folder, or a folder of `llmrec train` runs")
    parser.add_argument("--name", help="folder under benchmarks/runs_kept (default: the runs folder's name)")
    parser.add_argument("--dest", type=Path, help="keep into this folder instead of benchmarks/runs_kept/<name>")
    args = parser.parse_args()
    src = Path(args.runs)
    done = keep(src, args.dest or HERE / "runs_kept" / (args.name or src.name))
    print(f"kept {len(done)} finished runs of {src}:")
    for run in done:
        print("  ", run.relative_to(src) if run != src else "(its interests job state)")


if __name__ == "__main__":
    main()
