"""Where an MCLMR model's validation accuracy goes: its ranking with and without the confounder term.

    python benchmarks/mclmr_confounder.py runs/select-taobao/mf+mclmr --name taobao_mclmr_confounder

MCLMR trains with ``s(u, i) + c[Z_u] * log(1 + pop_i)`` and ranks by the intervention, which drops
the second term (llmrec/backbones/plugins/mclmr.py). For every ``best.safetensors`` under the folder
of a finished run (selection runs, ``eval.test=false``) this scores the VALID split twice with full ranking: as the
model ranks, and with the training-time confounder term added back. If restoring the term recovers
most of the gap to the plain backbone, the gap comes from deconfounding the ranking; if not, from
what the plug-in's losses learned. Valid only: a test figure would leak into the choices it informs.
Writes results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from keep_runs import finished_runs  # noqa: E402  (benchmarks/, on the path when run as a script)
from valid_selection import publish  # noqa: E402

METRICS = ("ndcg@20", "recall@20", "pop10_share@20")


def confounded(model):
    """The model's full-ranking scores with c[Z_u] * log(1 + pop_i) added back."""
    def score(batch, candidates=None):
        s = type(model).score(model, batch) + model.confounder_term(batch["users"])
        return s if candidates is None else s.gather(1, candidates)
    return score


def finished_checkpoints(folder: Path) -> list[Path]:
    """best.safetensors of the finished runs (keep_runs' rule): a running one's best still moves."""
    return [run / "best.safetensors" for run in finished_runs(folder) if (run / "best.safetensors").exists()]


def check(checkpoint: Path) -> dict:
    from llmrec.backbones.plugins.mclmr import MCLMR
    from llmrec.config import EvalConfig
    from llmrec.eval.ranking import evaluate
    from llmrec.train.checkpoint import load_for_eval

    model, ckpt, cfg, data, examples, pop = load_for_eval(checkpoint, "valid")
    if not isinstance(model, MCLMR):
        raise SystemExit(f"{checkpoint}: not an MCLMR model ({type(model).__name__})")
    ecfg = EvalConfig(ks=[20])
    model.eval()
    with torch.no_grad():
        ranked = evaluate(model, examples, ecfg, n_items=data.n_items, popularity=pop).metrics
        model.score = confounded(model)
        restored = evaluate(model, examples, ecfg, n_items=data.n_items, popularity=pop).metrics
    return {"run": str(checkpoint.parent), "dataset": data.name, "lr": cfg.train.lr,
            "epoch": ckpt.get("epoch"), "conformity": [round(c, 4) for c in model.conformity.tolist()],
            "intervention": {m: float(ranked[m]) for m in METRICS},
            "confounder_added": {m: float(restored[m]) for m in METRICS}}


def markdown(rows: list[dict]) -> str:
    lines = [f"MCLMR on VALID ({rows[0]['dataset']}), full ranking: as it ranks (the intervention) and with the "
             "training-time confounder term c[Z_u] * log(1 + pop_i) added back.", "",
             "| run | lr | " + " | ".join(f"{m} ranked | {m} term added" for m in METRICS) + " | conformity |",
             "|---|---:|" + "---:|---:|" * len(METRICS) + "---|"]
    for r in rows:
        cells = " | ".join(f"{r['intervention'][m]:.4f} | {r['confounder_added'][m]:.4f}" for m in METRICS)
        lines.append(f"| {r['run']} | {r['lr']:g} | {cells} | {', '.join(f'{c:.2f}' for c in r['conformity'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--name", required=True, help="results/<name>.{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoints = finished_checkpoints(args.folder)
    if not checkpoints:
        raise SystemExit(f"{args.folder}: no finished run with a best.safetensors found")
    publish(args.name, [check(c) for c in checkpoints], markdown)


if __name__ == "__main__":
    main()
