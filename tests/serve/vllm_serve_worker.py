"""Runs inside the vLLM environment (.venv-vllm): a stage-2 run served with the vLLM backend by a
real uvicorn server on a free loopback port; concurrent explain requests; writes the answers and
the server's batch statistics as JSON.

Usage: .venv-vllm/bin/python tests/serve/vllm_serve_worker.py STAGE2_RUN MODEL_FOLDER PAIRS_JSON OUT_JSON
"""

import json
import socket
import sys
import threading
import time


def main(run: str, folder: str, pairs_path: str, out: str) -> None:
    import httpx
    import uvicorn

    from llmrec.llm.vllm_backend import VLLMBackend
    from llmrec.serve.app import create_app
    from llmrec.serve.explainer import Explainer

    explainer = Explainer.from_run(run, backend=VLLMBackend(folder, max_model_len=1024, enforce_eager=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(explainer=explainer, max_batch=8, max_wait_ms=500),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    queries = json.load(open(pairs_path))
    answers = [None] * len(queries)

    def ask(k: int) -> None:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/explain", json=queries[k], timeout=600)
        answers[k] = {"status": r.status_code, **r.json()}

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = httpx.get(f"http://127.0.0.1:{port}/v1/stats").json()["explain"]
    missing = httpx.post(f"http://127.0.0.1:{port}/v1/explain", json={"user_id": "ghost", "item_id": "1"})
    server.should_exit = True
    thread.join(timeout=30)
    explainer.close()  # stop vLLM's engine processes
    json.dump({"answers": answers, "stats": stats, "missing": [missing.status_code, missing.json()],
               "backend": explainer.info["backend"]}, open(out, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:5])
