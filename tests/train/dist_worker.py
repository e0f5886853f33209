"""Worker for test_distributed: one training step under torchrun, then dumps what it saw.

Usage: python -m torch.distributed.run --nproc_per_node 2 dist_worker.py DATA_DIR OUT_DIR [semantic|dspnet]
Also runs as a single process (no launcher) to give the reference result. With ``semantic`` the
model trains inside the semantic adapter (IBIM, seeded random interest tables); with ``dspnet``
it is DSPnet on daypart scenes, whose discriminator the trainer steps outside DDP.
"""

import sys
from pathlib import Path

import torch

from llmrec.backbones.registry import build_backbone
from llmrec.config import DataConfig, EvalConfig, TrainConfig
from llmrec.data.prepare import prepare
from llmrec.data.sequences import TrainWindows
from llmrec.train.seed import seed_everything
from llmrec.train.trainer import Trainer
from llmrec.train.checkpoint import save_checkpoint


def main(data_dir: str, out_dir: str, mode: str = "") -> None:
    semantic = mode == "semantic"
    scenes = "daypart" if mode == "dspnet" else "none"
    data = prepare(DataConfig(source="recbole", path=data_dir, max_len=7, derive_scenes=scenes), use_cache=False)
    train = TrainWindows.build(data, max_len=7)
    seen: list[int] = []
    original = train.batch

    def recording(index):
        seen.extend(train.users[index].tolist())
        return original(index)

    train.batch = recording
    seed_everything(0)
    name = {"semantic": "ibim", "dspnet": "dspnet"}.get(mode, "sasrec")
    model = build_backbone({"name": name, "hidden": 16, "n_layers": 1, "inner": 32, "dropout": 0.0},
                           n_items=data.n_items, max_len=7, n_scenes=len(data.scene_vocab))
    adapter = None
    if semantic:
        from llmrec.backbones.plugins.semantic import SemanticAdapter

        g = torch.Generator().manual_seed(0)
        U = data.n_users
        adapter = SemanticAdapter(model, torch.randn(U, 3, 8, generator=g), torch.rand(U, 3, generator=g),
                                  torch.arange(U), dim=16, align_weight=1.0, predict_weight=1.0)
    cfg = TrainConfig(batch_size=len(train), lr=1e-2, device="cpu", out_dir=out_dir, progress=False)
    trainer = Trainer(model, cfg, eval_cfg=EvalConfig(), n_items=data.n_items, adapter=adapter)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer._epoch(train)
    rank = trainer.dist.rank
    save_checkpoint(Path(out_dir) / f"rank{rank}-of-{trainer.dist.world_size}.safetensors", {"world_size": trainer.dist.world_size, "users": seen, "n_windows": len(train),
                "targets_per_window": int((original(torch.arange(len(train)).numpy())["targets"] > 0)
                                          .sum(1).min()),
                "initial": initial, "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "heads": {k: v.detach().clone() for k, v in (adapter.state_dict() if adapter else {}).items()}})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *sys.argv[3:4])
