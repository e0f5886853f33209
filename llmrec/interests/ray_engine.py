"""Scale-out of the extraction on Ray Data (``extract.engine: ray``).

The representatives' prompts stream through ``Dataset.map_batches`` into a pool of actors, each
holding one LLM (the HF backend on CPU, or vLLM with ``num_gpus=1`` per actor on a GPU cluster).
Order is preserved, so the driver's JobRunner still commits batch after batch: checkpoints,
resume and the output file are the same as with the local engine. On one machine this is a
one-node Ray (``ray.init(num_cpus=...)``); on a cluster, start Ray first and it is joined.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

from llmrec.interests.config import ExtractConfig


class _Generator:
    """A Ray actor: loads the backend once, answers batches of JSON-encoded chat messages."""

    def __init__(self, cfg: dict):
        from llmrec.interests.extract import backend_kwargs, generation_params
        from llmrec.llm.factory import load_backend

        self.cfg = ExtractConfig(**cfg)
        self.llm = load_backend(self.cfg.llm, backend=self.cfg.backend, batch_size=self.cfg.batch_size,
                                **backend_kwargs(self.cfg))
        self.params = generation_params(self.cfg)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        messages = [json.loads(m) for m in batch["messages"]]
        texts = [g.text for g in self.llm.generate(messages, self.params)]
        return {"position": batch["position"], "text": np.asarray(texts, dtype=object)}


def _init_ray(cfg: ExtractConfig) -> None:
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, ignore_reinit_error=True)
        else:  # a one-node Ray on this machine
            ray.init(num_cpus=max(1, os.cpu_count() or 1), include_dashboard=False, ignore_reinit_error=True,
                     log_to_driver=False)


def ray_generate(cfg: ExtractConfig, records: Sequence[dict]) -> Callable[[Sequence[list]], list[str]]:
    """messages -> answers on a pool of ``cfg.ray_workers`` actors.

    The first asks of all ``records`` (from wherever the job resumes) run as one streaming Ray
    Data pass, so the actors load the LLM once; repair turns, which are few, run as small passes.
    """
    from dataclasses import asdict

    import ray.data

    from llmrec.interests.extract import Prompts

    _init_ray(cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    prompts = Prompts(cfg)
    firsts = [json.dumps(prompts.first(r)) for r in records]
    index_of = {m: i for i, m in enumerate(firsts)}

    def dataset(encoded: Sequence[str]):
        rows = [{"position": i, "messages": m} for i, m in enumerate(encoded)]
        return ray.data.from_items(rows).map_batches(
            _Generator, fn_constructor_kwargs={"cfg": asdict(cfg)}, batch_size=cfg.batch_size,
            compute=ray.data.ActorPoolStrategy(size=cfg.ray_workers), num_gpus=1 if cfg.backend == "vllm" else 0,
            batch_format="numpy")

    state: dict = {"stream": None, "next": -1}

    def generate(messages: Sequence[list]) -> list[str]:
        encoded = [json.dumps(m) for m in messages]
        start = index_of.get(encoded[0]) if encoded else None
        if start is None or encoded != firsts[start:start + len(encoded)]:  # a repair turn
            out = sorted(dataset(encoded).take_all(), key=lambda r: int(r["position"]))
            return [str(r["text"]) for r in out]
        if state["stream"] is None or start != state["next"]:
            state["stream"] = iter(dataset(firsts[start:]).iter_rows())
        rows = [next(state["stream"]) for _ in encoded]
        state["next"] = start + len(encoded)
        return [str(r["text"]) for r in rows]

    return generate
