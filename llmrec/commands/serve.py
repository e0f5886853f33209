"""``llmrec serve RUN``: LLM-free recommendations from a trained run over HTTP (FastAPI + uvicorn).

  llmrec serve runs/sasrec-ml100k                 # http://127.0.0.1:8000/docs
  LLMREC_API_KEY=secret llmrec serve runs/x --host 0.0.0.0 --api-key-env LLMREC_API_KEY
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a training run folder (its best.pt) or a checkpoint file")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the X-API-Key header to equal this environment variable's value "
                             "(required when binding a non-loopback address)")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024)


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from llmrec.errors import ConfigError
    from llmrec.serve.app import create_app
    from llmrec.serve.recommender import Recommender

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty or unset")
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        raise ConfigError(f"--host {args.host} is not loopback: set --api-key-env so requests need a key")
    app = create_app(Recommender.from_run(args.run), api_key=api_key, max_body_bytes=args.max_body_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
