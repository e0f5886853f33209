"""``llmrec interests extract|show|curve|shuffle``: the ESIM semantic-interest job.

  llmrec interests extract -c configs/interests/ml100k.yaml --dry-run
  llmrec interests extract -c configs/interests/ml100k.yaml [--limit 16] [--engine ray]
  llmrec interests show --run runs/interests-ml100k --user 196
  llmrec interests curve -c configs/interests/ml100k.yaml --preferences median,q0.1,q0.01,min
  llmrec interests curve -c configs/interests/ml100k.yaml --downstream configs/ablations/eimf-ml100k.yaml
  llmrec interests shuffle --run runs/interests-ml100k --out runs/interests-ml100k-shuffled --seed 0
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["extract", "show", "curve", "shuffle"])
    parser.add_argument("--config", "-c", help="ESIM YAML config (configs/interests/*.yaml)")
    parser.add_argument("--out", "-o", help="shortcut for out_dir=...; shuffle: the control's folder")
    parser.add_argument("--dry-run", action="store_true", help="extract: print LLM calls and estimated time only")
    parser.add_argument("--limit", type=int, help="extract: stop after N representatives (rerun to continue)")
    parser.add_argument("--engine", choices=["local", "ray"], help="extract: shortcut for extract.engine=...")
    parser.add_argument("--run", help="show, shuffle: job folder (out_dir)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle: seed of the permutation of clusters")
    parser.add_argument("--user", help="show: the dataset's user id")
    parser.add_argument("--preferences", default="median,q0.2,q0.05,q0.01,min",
                        help="curve: comma-separated AP preferences")
    parser.add_argument("--results", help="curve: folder for curve.{json,md,png} (default: OUT/curve)")
    parser.add_argument("--reference-users", type=int, default=100,
                        help="curve: users also asked individually (the one-call-per-user baseline)")
    parser.add_argument("--downstream", metavar="ABLATION_YAML",
                        help="curve: also train a backbone with each point's interests and without "
                             "(a configs/ablations/eimf-*.yaml; one seed) and report the test NDCG@20 change")
    parser.add_argument("--downstream-backbone", default="ibim", help="curve: the backbone of --downstream")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def main(args: argparse.Namespace) -> int:
    import json

    from llmrec.errors import ConfigError

    if args.action == "show":
        from llmrec.interests.job import show_user

        if not args.run or args.user is None:
            raise ConfigError("show needs --run and --user")
        rec = show_user(args.run, args.user)
        print(f"user {rec['user']}  cluster {rec['cluster']}  representative {rec['representative']}  "
              f"similarity {rec['similarity']}  status {rec['status']}")
        if rec.get("answer_from") is not None:  # a shuffled control
            print(f"control: phrases from cluster {rec['answer_from_cluster']}'s representative {rec['answer_from']}")
        for it in rec["interests"]:
            print(f"  {it['weight']:.3f}  {it['interest']}  (LLM weight {it['llm_weight']})")
        if rec.get("history"):
            print("recent training history:\n  " + rec["history"].replace("\n", "\n  "))
        return 0
    if args.action == "shuffle":
        from llmrec.interests.control import shuffle_clusters

        if not args.run or not args.out:
            raise ConfigError("shuffle needs --run (a finished extract folder) and --out")
        summary = shuffle_clusters(args.run, args.out, seed=args.seed)
        print(json.dumps(summary, indent=1))
        print(f"wrote {args.out}/artifact: every cluster carries another cluster's interests "
              f"(train with semantic.interests={args.out})")
        return 0
    from llmrec.interests.config import load_interests_config

    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    overrides += [f"extract.engine={args.engine}"] if args.engine else []
    cfg = load_interests_config(args.config, overrides)
    if args.action == "curve":
        from llmrec.experiments.curve import run_curve

        prefs = [p.strip() for p in args.preferences.split(",") if p.strip()]
        downstream = None
        if args.downstream:
            from llmrec.experiments.ablate import load_ablation

            ab = load_ablation(args.downstream, [], backbones=[args.downstream_backbone], variants=["plain"])
            downstream = {"ablation": ab, "backbone": args.downstream_backbone, "seed": ab["seeds"][0]}
        result = run_curve(cfg, prefs, n_reference=args.reference_users, results_dir=args.results,
                           progress=not args.no_progress, downstream=downstream)
        print(result["markdown"])
        return 0
    from llmrec.interests.job import run_job

    stats = run_job(cfg, dry_run=args.dry_run, limit=args.limit, progress=not args.no_progress)
    print(json.dumps(stats, indent=1, default=str))
    if not args.dry_run and not stats.get("complete"):
        print(f"partial: {stats['representatives_done']}/{stats['representatives']} representatives done; rerun "
              "without --limit to finish (the artifact is written when all are done)")
    return 0
