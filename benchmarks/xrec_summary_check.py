"""Do XRec's user and item summaries carry the reference explanation's own content?

Lever (ii) of the explanations issue (the trained text profile, b') feeds XRec's summaries to the
LLM. If a summary was written from the same review as a pair's reference, (b') reads part of its
answer. The release has one summary per user and one per item for all of its pairs (whatever
llmrec's split), and does not say which reviews they were written from, so this measures what can
be measured, on TRAIN and VALID pairs only (test references are not read):

1. Same-item control: for a pair (u, i) and a pair (u', i) of another user on the same item, is u's
   summary closer to u's own reference than to u''s reference of the same item? (MiniLM cosine;
   and the share of the reference's distinctive words, those outside the title and outside the 200
   commonest words of all references, that appear in the summary.) A positive gap means the user
   summary holds pair-specific content of the reference: either it was written from that review or
   the user's tastes are consistent; the data cannot separate the two.
2. Pair identification of the summaries themselves: the user + item summary of each valid pair,
   used as if it were the explanation, ranked against the pair's reference and 19 distractor pairs'
   (llmrec's faithfulness metric): what a model that paraphrased the profile would reach, with the
   item name kept and with it removed.

    python benchmarks/xrec_summary_check.py --name xrec_summary_check
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.atomic import write_text  # noqa: E402

WORD = re.compile(r"[a-z][a-z']+")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def main() -> None:
    from llmrec.alignment.pairs import load_pairs, sample
    from llmrec.config import DataConfig
    from llmrec.data.prepare import prepare
    from llmrec.eval.bootstrap import bootstrap_mean
    from llmrec.eval.faithfulness import distractors, identify
    from llmrec.llm.encoder import SentenceEncoder

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="../shared/data/xrec/yelp")
    p.add_argument("--split-version", type=int, default=1, help="data.explanation_split_version (1: the published tables)")
    p.add_argument("--name", required=True)
    args = p.parse_args()

    data = prepare(DataConfig(source="xrec", path=args.path, explanation_split_version=args.split_version))
    pairs = load_pairs(data, "xrec")
    seen = pairs.loc[pairs["split"].isin(["train", "valid"])].reset_index(drop=True)
    enc = SentenceEncoder("minilm-l6")
    common = {w for w, _ in collections.Counter(w for t in seen["reference"] for w in words(t)).most_common(200)}

    # 1. same-item control
    by_item = seen.groupby("item").indices
    own_cos, other_cos, own_words, other_words = [], [], [], []
    texts = {}
    for idx in by_item.values():
        for a in idx:
            b = next((b for b in idx if seen["user"].iloc[b] != seen["user"].iloc[a]), None)
            if b is None:
                continue
            summary, title = seen["user_summary"].iloc[a], words(seen["title"].iloc[a])
            texts.setdefault(summary, None)
            for ref_row, cos, share in ((a, own_cos, own_words), (b, other_cos, other_words)):
                ref = seen["reference"].iloc[ref_row]
                texts.setdefault(ref, None)
                cos.append((summary, ref))
                distinct = words(ref) - common - title
                share.append(len(distinct & words(summary)) / len(distinct) if distinct else 0.0)
    keys = list(texts)
    emb = dict(zip(keys, enc.encode(keys)))
    own = np.array([float(emb[s] @ emb[r]) for s, r in own_cos])
    other = np.array([float(emb[s] @ emb[r]) for s, r in other_cos])
    report = {"dataset": data.name, "split_version": args.split_version,
              "summaries": {"pairs": int(len(pairs)), "users": int(pairs["user"].nunique()),
                            "distinct_user_summaries": int(pairs.groupby("user")["user_summary"].nunique().max()),
                            "items": int(pairs["item"].nunique()),
                            "distinct_item_summaries": int(pairs.groupby("item")["item_summary"].nunique().max())},
              "same_item": {"pairs": len(own), "cos_own": float(own.mean()), "cos_other_user": float(other.mean()),
                            "cos_gap": bootstrap_mean(own - other),
                            "distinct_words_in_summary_own": float(np.mean(own_words)),
                            "distinct_words_in_summary_other_user": float(np.mean(other_words)),
                            "distinct_words_gap": bootstrap_mean(np.array(own_words) - np.array(other_words))}}

    # 2. the summaries as explanations, pair identification on the valid pairs
    valid = sample(pairs, "valid", 200, 0)
    dis = distractors(valid["user"].to_numpy(), valid["item"].to_numpy(), seed=0)
    profile = (valid["user_summary"] + " " + valid["item_summary"]).tolist()
    no_name = [re.sub(re.escape(t), "the place", p, flags=re.IGNORECASE) for p, t in zip(profile, valid["title"])]
    report["identification"] = {"pairs": int(len(valid))}
    for label, outputs in (("summaries", profile), ("summaries, item name removed", no_name),
                           ("item summary only", valid["item_summary"].tolist()),
                           ("user summary only", valid["user_summary"].tolist())):
        got = identify(enc, outputs, valid["reference"].tolist(), dis)
        report["identification"][label] = {"top1": float(got["top1"].mean()), "mrr": float(got["rr"].mean())}
    out = HERE / "results" / args.name
    write_text(out.with_suffix(".json"), json.dumps(report, indent=1))
    write_text(out.with_suffix(".md"), markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    s, si, ident = r["summaries"], r["same_item"], r["identification"]
    gap, wgap = si["cos_gap"], si["distinct_words_gap"]
    lines = [f"XRec summaries on {r['dataset']} (split version {r['split_version']}): {s['pairs']:,} pairs, "
             f"{s['users']:,} users with at most {s['distinct_user_summaries']} distinct user summary each, "
             f"{s['items']:,} items with at most {s['distinct_item_summaries']} distinct item summary each "
             "(one text per user and per item, whatever the split).", "",
             f"Same-item control over {si['pairs']:,} train/valid pairs that share their item with another user's pair:", "",
             "| user summary vs | MiniLM cosine | share of the reference's distinctive words in the summary |",
             "|---|---:|---:|",
             f"| the user's own reference | {si['cos_own']:.4f} | {si['distinct_words_in_summary_own']:.4f} |",
             f"| another user's reference of the same item | {si['cos_other_user']:.4f} | "
             f"{si['distinct_words_in_summary_other_user']:.4f} |",
             f"| own minus other (bootstrap 95% interval over pairs) | {gap['mean']:+.4f} [{gap['ci_low']:+.4f}, "
             f"{gap['ci_high']:+.4f}] | {wgap['mean']:+.4f} [{wgap['ci_low']:+.4f}, {wgap['ci_high']:+.4f}] |", "",
             f"The summaries used as the explanation, pair identification on {ident['pairs']} valid pairs "
             "(own reference among 1 + 19 distractor pairs' references; chance top-1 0.05):", "",
             "| text | top-1 | MRR |", "|---|---:|---:|"]
    for label, v in ident.items():
        if label != "pairs":
            lines.append(f"| {label} | {v['top1']:.3f} | {v['mrr']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
