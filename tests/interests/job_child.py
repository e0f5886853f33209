"""Runs an ESIM job in a child process for the crash test: ``python -m tests.interests.job_child cfg.json``.

The stand-in LLM sleeps per batch so the parent can SIGKILL it between checkpoints.
"""

from __future__ import annotations

import json
import sys
import time

from llmrec.config import from_dict
from llmrec.interests.config import InterestsConfig
from llmrec.interests.job import run_job
from tests.interests.conftest import scripted_answer


def main() -> None:
    cfg = from_dict(InterestsConfig, json.loads(open(sys.argv[1]).read()))
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0

    def generate(messages):
        time.sleep(delay)
        return [scripted_answer(m) for m in messages]

    print(json.dumps(run_job(cfg, progress=False, generate=generate)))


if __name__ == "__main__":
    main()
