"""One RecBole SASRec run on the exported split (a child process of sasrec_vs_recbole.py).

RecBole is a benchmark-only dependency. It needs numpy-2 aliases patched in before import, and its
``quick_start`` imports ray, so this uses the lower-level API. Its ``load_best_model`` fails on
torch >= 2.6 (``torch.load`` weights_only), so the best checkpoint is loaded here.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

for alias, target in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_),
                      ("bool8", np.bool_), ("int_", np.int64)):
    if not hasattr(np, alias):
        setattr(np, alias, target)

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402

from llmrec.eval.metrics import rank_metrics  # noqa: E402


def main(data_dir: str, out_json: str, seed: int, epochs: int, stopping_step: int) -> None:
    data_dir = Path(data_dir)
    work = Path(out_json).parent / f"recbole-seed{seed}"
    params = {
        "data_path": str(data_dir.parent), "dataset": data_dir.name, "checkpoint_dir": str(work),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": 50, "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE",
        "train_neg_sample_args": None, "learning_rate": 1e-3, "train_batch_size": 256,
        "eval_batch_size": 256, "epochs": epochs, "stopping_step": stopping_step,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR", "Recall"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": seed, "reproducibility": True, "show_progress": False,
        "log_wandb": False, "state": "WARNING", "worker": 0,
    }
    t0 = time.perf_counter()
    config = Config(model="SASRec", dataset=data_dir.name, config_dict=params)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to("cpu")
    trainer = Trainer(config, model)
    setup_s = time.perf_counter() - t0
    log: list[dict] = []
    start = time.perf_counter()

    def on_epoch(epoch_idx: int, valid_score: float) -> None:
        log.append({"epoch": epoch_idx + 1, "valid_ndcg@10": float(valid_score),
                    "elapsed_seconds": time.perf_counter() - start})

    trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False, callback_fn=on_epoch)
    ckpt = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    eval_times = []
    for _ in range(5):
        t = time.perf_counter()
        recbole_test = trainer.evaluate(test_data, load_best_model=False)
        eval_times.append(time.perf_counter() - t)
    # per-user metrics with llmrec's metric code, to pair users with llmrec's run
    users, per_user = [], {}
    n_items = dataset.item_num
    with torch.no_grad():
        for interaction, history_index, positive_u, positive_i in test_data:
            scores = model.full_sort_predict(interaction).view(-1, n_items)
            scores[:, 0] = float("-inf")
            if history_index is not None:
                scores[history_index] = float("-inf")
            targets = torch.zeros_like(scores, dtype=torch.bool)
            targets[positive_u, positive_i] = True
            for k, v in rank_metrics(scores, targets, [5, 10, 20, 50]).items():
                per_user.setdefault(k, []).extend(v.tolist())
            users.extend(dataset.id2token("user_id", interaction["user_id"].numpy()).tolist())
    best = max(log, key=lambda r: r["valid_ndcg@10"])
    epoch_s = np.diff([0.0] + [r["elapsed_seconds"] for r in log])
    out = {
        "system": "recbole", "seed": seed, "setup_seconds": setup_s, "epochs_run": len(log),
        "best_epoch": best["epoch"], "best_valid_ndcg@10": best["valid_ndcg@10"],
        "seconds_to_best": best["elapsed_seconds"], "seconds_per_epoch_median": float(np.median(epoch_s)),
        "test_eval_seconds_median": statistics.median(eval_times),
        "test": {k: float(np.mean(v)) for k, v in per_user.items()},
        "recbole_reported_test": {k: float(v) for k, v in recbole_test.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "log": log, "per_user": {"users": users, "ndcg@10": per_user["ndcg@10"], "hr@10": per_user["hr@10"]},
    }
    Path(out_json).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
