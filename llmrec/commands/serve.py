"""``llmrec serve``: recommendations (a trained backbone, no LLM) and explanations (a stage-2 run)
over HTTP (FastAPI + uvicorn; OpenAPI docs at /docs).

  llmrec serve runs/sasrec-ml100k                                  # POST /v1/recommend
  llmrec serve runs/demo --explain runs/alignment-yelp/beat        # + POST /v1/explain (HF)
  llmrec serve --explain runs/alignment-yelp/beat --backend vllm   # under .venv-vllm
  LLMREC_API_KEY=secret llmrec serve runs/x --host 0.0.0.0 --api-key-env LLMREC_API_KEY
  llmrec serve --pipeline runs/demo                                 # + the explorer at /explore
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", help="a training run folder (its best.safetensors) or a checkpoint file")
    parser.add_argument("--explain", metavar="STAGE2_RUN", help="a stage-2 run folder (final.safetensors): serve /v1/explain")
    parser.add_argument("--pipeline", metavar="RUN", help="a finished `llmrec pipeline` folder: its backbone, its "
                        "explainer, and the explanation explorer at /explore (users, interests, counterfactuals)")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="LLM runtime for explanations")
    parser.add_argument("--max-batch", type=int, default=32, help="explain requests per batched generation")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="how long a batch waits for more requests after its first")
    parser.add_argument("--max-queue", type=int, default=256, help="explain requests waiting at most (then 503)")
    parser.add_argument("--no-batching", action="store_true", help="one generation per request (= --max-batch 1)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the X-API-Key header to equal this environment variable's value "
                             "(required when binding a non-loopback address)")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024)


def main(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from llmrec.errors import ConfigError
    from llmrec.serve.app import create_app
    from llmrec.serve.explainer import Explainer
    from llmrec.serve.recommender import Recommender

    if not args.run and not args.explain and not args.pipeline:
        raise ConfigError("serve needs a training run (recommendations), --explain STAGE2_RUN, or --pipeline RUN")
    if args.pipeline and (args.run or args.explain):
        raise ConfigError("--pipeline RUN brings its own backbone and explainer; give it alone")
    if args.max_batch < 1:
        raise ConfigError(f"--max-batch {args.max_batch}: must be >= 1")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty or unset")
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        raise ConfigError(f"--host {args.host} is not loopback: set --api-key-env so requests need a key")
    max_batch = 1 if args.no_batching else args.max_batch
    view = None
    if args.pipeline:
        from llmrec.serve.explore import RunView

        view = RunView.from_pipeline(args.pipeline, backend_kind=args.backend, batch_size=max_batch)
        rec, expl = view.rec, view.ex
    else:
        rec = Recommender.from_run(args.run) if args.run else None
        expl = Explainer.from_run(args.explain, backend_kind=args.backend, batch_size=max_batch) if args.explain else None
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("llmrec.serve").setLevel(logging.INFO)  # one line per formed batch
    app = create_app(rec, expl, explorer=view, api_key=api_key, max_body_bytes=args.max_body_bytes, max_batch=max_batch,
                     max_wait_ms=args.max_wait_ms, max_queue=args.max_queue)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:
        if expl is not None:
            expl.close()
    return 0
