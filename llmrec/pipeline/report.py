"""The pipeline's report: ``report.json`` (for machines), ``report.md``, ``report.html`` and PNG plots.

Everything in ``report.json`` is computed from the steps' files, so two runs that computed the same
steps write the same report (timings and cache use go to ``run.json`` instead).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import save_figure, write_text
from llmrec.pipeline.config import PipelineConfig, folder, serving_backbone

CHECKS = [("evidence_top1", "evidence id top-1"), ("evidence_rr", "evidence id MRR"), ("echo", "echo"),
          ("copies_evidence", "copies evidence"), ("hallucinated_title", "hallucinated title"), ("names_evidence_title", "names an evidence title"),
          ("names_target_title", "names the item"), ("usr", "USR")]


def _r(x: Any, nd: int = 4) -> Any:
    return round(float(x), nd) if isinstance(x, (float, np.floating)) else x


def ranking(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """Test metrics of the plain and the signals backbone, 95% intervals over test users, and the
    paired difference (signals - plain)."""
    from llmrec.eval.bootstrap import bootstrap_mean, paired_bootstrap

    n_boot, seed = cfg.explain.bootstrap, cfg.explain.seed
    runs = {"plain": folder(out, "backbone")}
    if cfg.signals.enabled:
        runs["+ ESIM signals"] = folder(out, "backbone_signals")
    per: dict[str, dict[str, np.ndarray]] = {}
    table: dict[str, Any] = {}
    for name, where in runs.items():
        res = json.loads((where / "results.json").read_text())
        arrays = np.load(where / "test_per_user.npz")
        per[name] = {k: arrays[k] for k in arrays.files if "@" in k and not k.startswith("pop10")}
        table[name] = {"best_epoch": res["best_epoch"], "epochs": res["epochs"], "stopped_by": res.get("stopped_by"),
                       "metrics": {k: {kk: _r(vv) for kk, vv in bootstrap_mean(v, n_resamples=n_boot, seed=seed).items()}
                                   for k, v in per[name].items()}}
    out_ = {"backbone": " + ".join([cfg.backbone["name"], *sorted(cfg.backbone.get("plugins") or {})]),
            "runs": table, "derived": json.loads((runs["plain"] / "results.json").read_text()).get("derived", [])}
    if len(per) == 2:
        a, b = per["plain"], per["+ ESIM signals"]
        out_["difference"] = {k: {kk: _r(vv) for kk, vv in
                                  paired_bootstrap(a[k], b[k], n_resamples=n_boot, seed=seed).items()} for k in a}
    return out_


def users_view(cfg: PipelineConfig, out: Path) -> list[dict[str, Any]]:
    """Per explained user: recent training history, ESIM interests, recommendations with their
    explanations, evidence, control and checks."""
    from llmrec.data.prepare import TRAIN, prepare
    from llmrec.interests.job import read_records, user_interests

    data = prepare(cfg.data)
    titles = data.items["title"] if data.items is not None and "title" in data.items else None
    records = [json.loads(x) for x in (folder(out, "explain") / "explanations.jsonl").read_text().splitlines()]
    interests = read_records(folder(out, "interests"))
    index = {u: i for i, u in enumerate(data.user_vocab)}
    view = []
    for user in dict.fromkeys(r["user"] for r in records):
        rows = data.rows(index[user])
        hist = data.item[rows][data.split[rows] == TRAIN][-5:][::-1]
        esim = user_interests(interests, user)
        view.append({
            "user": user,
            "recent_history": [str(titles[int(i)]) if titles is not None else data.item_vocab[int(i)] for i in hist],
            "interests": esim["phrases"], "interests_status": esim["status"], "interests_answer": esim["answer"],
            "interests_cluster": esim["cluster"], "interests_from": esim["representative"],
            "recommendations": [{k: v for k, v in r.items() if k != "user"} for r in records if r["user"] == user]})
    return view


def write_report(cfg: PipelineConfig, out: Path, status: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from llmrec.config import to_dict

    explain = json.loads((folder(out, "explain") / "summary.json").read_text())
    report = {"dataset": cfg.data.name or cfg.data.source, "config": to_dict(cfg), "ranking": ranking(cfg, out),
              "serving_backbone": serving_backbone(cfg), "users": users_view(cfg, out),
              "explanations": _rounded(explain),
              "stages": {name: _rounded(s.get("summary", {})) for name, s in status.items() if name != "explain"}}
    plots = plot_all(report, out)
    report["plots"] = plots
    write_text(out / "report.json", json.dumps(report, indent=1, default=str))
    write_text(out / "run.json", json.dumps({name: {k: v for k, v in s.items() if k != "summary"}
                                             for name, s in status.items()}, indent=1))
    md = markdown(report)
    write_text(out / "report.md", md)
    write_text(out / "report.html", to_html(report))
    return {**report, "steps": status}


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k not in ("seconds", "llm_seconds", "train_seconds",
                                                                        "cluster_seconds", "seconds_per_step",
                                                                        "created_at", "resumed_from_batch")}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return _r(value)


# -- plots ---------------------------------------------------------------------------------------
def plot_all(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    rk = report["ranking"]
    metrics = sorted({m for r in rk["runs"].values() for m in r["metrics"] if m.startswith(("ndcg", "recall", "hr"))},
                     key=lambda m: (m.split("@")[0], int(m.split("@")[1])))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(rk["runs"]))
    for j, (name, r) in enumerate(rk["runs"].items()):
        vals = [r["metrics"][m]["mean"] for m in metrics]
        err = np.array([[r["metrics"][m]["mean"] - r["metrics"][m]["ci_low"] for m in metrics],
                        [r["metrics"][m]["ci_high"] - r["metrics"][m]["mean"] for m in metrics]])
        ax.bar(np.arange(len(metrics)) + j * width, vals, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(rk["runs"]) - 1) / 2, metrics, rotation=30)
    ax.set_title(f"{rk['backbone']}: test metrics (95% intervals over users)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "plots" / "ranking.png", dpi=100)
    plt.close(fig)
    made.append("plots/ranking.png")
    methods = report["explanations"]["methods"]
    keys = [k for k, _ in CHECKS]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(methods))
    for j, (name, m) in enumerate(methods.items()):
        ax.bar(np.arange(len(keys)) + j * width, [m.get(k, np.nan) for k in keys], width, label=name)
    ax.set_xticks(np.arange(len(keys)) + width * (len(methods) - 1) / 2, [label for _, label in CHECKS], rotation=30,
                  ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(f"explanation checks ({report['explanations']['pairs']} pairs)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "plots" / "explanations.png", dpi=100)
    plt.close(fig)
    made.append("plots/explanations.png")
    return made


# -- text ----------------------------------------------------------------------------------------
def _ci(d: dict[str, Any], key: str = "mean") -> str:
    return f"{d[key]:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"


def _signed(d: dict[str, Any]) -> str:
    return f"{d['mean_diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def ranking_table(rk: dict[str, Any], *, compact: bool = False) -> list[list[str]]:
    """Rows of the ranking table; ``compact``: HR and NDCG only (under leave-one-out, recall equals HR)."""
    runs = rk["runs"]
    metrics = [m for m in next(iter(runs.values()))["metrics"] if not compact or m.startswith(("hr@", "ndcg@"))]
    head = ["model", *metrics]
    rows = [head] + [[f"{rk['backbone']} {name}", *[_ci(r["metrics"][m]) for m in metrics]] for name, r in runs.items()]
    if "difference" in rk:
        rows.append(["signals - plain (paired)", *[_signed(rk["difference"][m]) for m in metrics]])
    return rows


def checks_table(ex: dict[str, Any]) -> list[list[str]]:
    rows = [["method", *[label for _, label in CHECKS]]]
    for name, m in ex["methods"].items():
        rows.append([name, *[f"{m[k]:.3f}" if k in m else "-" for k, _ in CHECKS]])  # "-": a run from before the check
    if "difference" in ex:
        d = ex["difference"]
        rows.append([f"{ex['method']} - control (paired)", _signed(d["evidence_top1"]), _signed(d["evidence_rr"]),
                     *[""] * (len(CHECKS) - 2)])
    return rows


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    rk, ex = report["ranking"], report["explanations"]
    parts = [f"# llmrec pipeline: {report['dataset']}", ""]
    if rk.get("derived"):
        parts += ["Derived signals: " + "; ".join(rk["derived"]), ""]
    parts += [f"## Recommendations ({rk['backbone']}, test split, full ranking)", "",
              "Mean over test users with a 95% bootstrap interval (HR and NDCG; report.json has every metric); the paired row is the signals run minus the "
              "plain run over the same users.", "", _md_table(ranking_table(rk, compact=True)), "", "![ranking](plots/ranking.png)",
              "", f"## Explanations ({ex['pairs']} pairs, {len(ex['users'])} users)", "",
              "Evidence identification ranks each explanation against its pair's own evidence and "
              f"{ex['k_distractors']} other pairs' evidence (chance top-1 {1 / (ex['k_distractors'] + 1):.2f}); the "
              "permutation control is the same model given another pair's evidence (sharing neither user nor item).",
              "", _md_table(checks_table(ex)), "", "![explanations](plots/explanations.png)", ""]
    for u in report["users"]:
        parts += [f"### User {u['user']}", "", "Recent history: " + "; ".join(u["recent_history"]), "",
                  f"ESIM interests ({interest_label(u)}): " + (", ".join(u["interests"]) or "none"), ""]
        for r in u["recommendations"]:
            parts += [f"{r['rank']}. **{r['title']}** (item {r['item']}, score {r['score']:.3f})",
                      f"   - explanation: {r['explanation']}",
                      f"   - evidence: {r['evidence']['text'].replace(chr(10), ' | ')}"
                      + (" (fallback: no titled history)" if r["evidence"]["fallback"] else "")]
            if "control" in r:
                parts.append(f"   - permutation control: {r['control']['explanation']}")
        parts.append("")
    return "\n".join(parts)


def interest_label(u: dict[str, Any]) -> str:
    """'ok', 'fallback', or 'inherited from user X: fallback' (the LLM answer's status is what counts)."""
    if u["interests_status"] == "inherited":
        return f"inherited from user {u['interests_from']}: {u['interests_answer']}"
    return u["interests_status"]


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th scope='col'>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any]) -> str:
    """A self-contained page (no scripts, no external assets but the plots beside it)."""
    e = html.escape
    rk, ex = report["ranking"], report["explanations"]
    body = [f"<h1>llmrec pipeline: {e(str(report['dataset']))}</h1>",
            f"<h2>Recommendations ({e(rk['backbone'])})</h2>", _html_table(ranking_table(rk, compact=True)),
            "<img src='plots/ranking.png' alt='test metrics of the plain and the signals backbone'>",
            f"<h2>Explanations ({ex['pairs']} pairs)</h2>", _html_table(checks_table(ex)),
            "<img src='plots/explanations.png' alt='explanation checks, method and permutation control'>"]
    for u in report["users"]:
        body.append(f"<section><h3>User {e(u['user'])}</h3><p>Recent history: {e('; '.join(u['recent_history']))}</p>"
                    f"<p>ESIM interests ({e(interest_label(u))}): {e(', '.join(u['interests']) or 'none')}</p><ol>")
        for r in u["recommendations"]:
            ctrl = (f"<br><small>permutation control: {e(r['control']['explanation'])}</small>" if "control" in r else "")
            body.append(f"<li><b>{e(r['title'])}</b> <small>(item {e(r['item'])}, score {r['score']:.3f})</small><br>"
                        f"{e(r['explanation'])}<br><small>evidence: {e(r['evidence']['text'])}</small>{ctrl}</li>")
        body.append("</ol></section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .4rem;font-size:.9rem}"
             "img{max-width:100%}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>llmrec pipeline report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
