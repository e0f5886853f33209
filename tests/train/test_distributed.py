"""Data-parallel training with 2 CPU processes (gloo) under torchrun and accelerate launch,
against one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import write_atomic_dataset
from llmrec.train.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("dist_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHERS = {
    "torchrun": lambda port: [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              "--master_addr", "127.0.0.1", "--master_port", str(port)],
    # accelerate's multi-process launcher; on a CPU machine the trainer picks gloo
    "accelerate": lambda port: [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                                "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                                "--dynamo_backend", "no", "--main_process_port", str(port)],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_gloo_matches_single_process(tmp_path, launcher):
    # 12 users x 10 items: leave-one-out leaves 8 training items = one full window of 7 targets
    data = write_atomic_dataset(tmp_path / "d", n_users=12, per_user=10)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    multi = tmp_path / "multi"
    multi.mkdir()
    cmd = LAUNCHERS[launcher](free_port()) + [str(WORKER), str(data), str(multi)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single = tmp_path / "single"
    single.mkdir()
    done = subprocess.run([sys.executable, str(WORKER), str(data), str(single)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    r0 = load_checkpoint(multi / "rank0-of-2.safetensors")
    r1 = load_checkpoint(multi / "rank1-of-2.safetensors")
    ref = load_checkpoint(single / "rank0-of-1.safetensors")
    assert r0["world_size"] == r1["world_size"] == 2
    # disjoint shards that together are the single process's batch
    assert r0["users"] and r1["users"] and not set(r0["users"]) & set(r1["users"])
    assert sorted(r0["users"] + r1["users"]) == sorted(ref["users"])
    assert ref["targets_per_window"] == 7  # equal targets per shard: mean of means = global mean
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), f"{k} differs between processes"
        assert torch.allclose(v, ref["params"][k], atol=1e-6), f"{k} differs from one process"
    assert torch.equal(r0["initial"]["item_emb.weight"], ref["initial"]["item_emb.weight"])
    assert not torch.equal(ref["params"]["item_emb.weight"], ref["initial"]["item_emb.weight"])


def two_ranks(tmp_path, mode: str):
    """Run the worker in ``mode`` under torchrun with 2 processes; the two ranks' dumps."""
    data = write_atomic_dataset(tmp_path / "d", n_users=12, per_user=10)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "multi"
    out.mkdir()
    cmd = LAUNCHERS["torchrun"](free_port()) + [str(WORKER), str(data), str(out), mode]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_checkpoint(out / "rank0-of-2.safetensors"), load_checkpoint(out / "rank1-of-2.safetensors")


def test_two_process_gloo_with_the_semantic_adapter_stays_in_sync(tmp_path):
    """The adapter's heads and the backbone train under DDP; both ranks end identical. (In-batch
    negatives differ per shard, so no equality with one process is expected.)"""
    r0, r1 = two_ranks(tmp_path, "semantic")
    assert r0["heads"] and set(r0["heads"]) == set(r1["heads"])
    for part in ("params", "heads"):
        for k, v in r0[part].items():
            assert torch.equal(v, r1[part][k]), f"{part} {k} differs between processes"
    assert not torch.equal(r0["params"]["w1.weight"], r0["initial"]["w1.weight"])


def test_two_process_gloo_with_an_adversary_stays_in_sync(tmp_path):
    """DSPnet's discriminator steps outside DDP with hand-averaged gradients: both ranks end with
    identical weights, discriminator included, and the discriminator did train."""
    r0, r1 = two_ranks(tmp_path, "dspnet")
    disc = [k for k in r0["params"] if k.startswith("discriminator.")]
    assert disc
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), f"{k} differs between processes"
    assert any(not torch.equal(r0["params"][k], r0["initial"][k]) for k in disc)
