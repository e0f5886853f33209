"""Runs the ESIM job with the vLLM backend inside the vLLM environment (see test_vllm_job.py):
``.venv-vllm/bin/python tests/interests/vllm_job.py cfg.json stats.json``."""

from __future__ import annotations

import json
import sys

from llmrec.config import from_dict
from llmrec.interests.config import InterestsConfig
from llmrec.interests.job import run_job

if __name__ == "__main__":
    cfg = from_dict(InterestsConfig, json.loads(open(sys.argv[1]).read()))
    stats = run_job(cfg, progress=False)
    open(sys.argv[2], "w").write(json.dumps(stats, default=str))
