"""Runs inside the vLLM environment (.venv-vllm): the same 32 soft-token prompts through the HF
backend and the vLLM backend, greedy; writes both outputs as JSON.

Usage: .venv-vllm/bin/python tests/llm/vllm_worker.py MODEL_FOLDER OUT_JSON [N_PROMPTS]
"""

import json
import sys
import time

import torch


def prompts(llm, n: int):
    from llmrec.llm.prompts import load_prompt

    tmpl = load_prompt("explanation")
    g = torch.Generator().manual_seed(0)
    scale = llm.embed_tokens(torch.arange(1000)).std().item()
    titles = ["Taco Riendo", "Winterfell Dessert", "Blue Bottle Coffee", "Green Leaf Sushi", "Old Town Diner",
              "Golden Dragon", "La Piazza", "Burger Barn"]
    return [tmpl.messages(user_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale,
                          item_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale,
                          title=titles[i % len(titles)] + f" #{i}") for i in range(n)]


def main(folder: str, out: str, n: int = 32) -> None:
    from llmrec.llm.backend import GenerationParams
    from llmrec.llm.hf import HFBackend
    from llmrec.llm.vllm_backend import VLLMBackend

    params = GenerationParams(max_new_tokens=24)
    hf = HFBackend(folder, batch_size=32)
    reqs = prompts(hf, n)
    hf_out = hf.generate(reqs, params)
    del hf
    t0 = time.perf_counter()
    # eager: the compile at engine start costs minutes on 2 cores (benchmarks/results/vllm_startup.md)
    vl = VLLMBackend(folder, max_model_len=1024, enforce_eager=True)
    load = time.perf_counter() - t0
    vl_out = vl.generate(prompts(vl, n), params)
    schema = {"type": "array", "minItems": 2, "maxItems": 3,
              "items": {"type": "object", "properties": {"interest": {"type": "string", "maxLength": 40},
                                                         "weight": {"type": "number"}},
                        "required": ["interest", "weight"]}}
    structured = vl.generate(["List two interests of a user who watched Star Wars and Alien, as JSON."],
                             GenerationParams(max_new_tokens=96, json_schema=schema))[0].text
    json.dump({"structured": structured, "schema": schema,"hf": [g.token_ids for g in hf_out], "vllm": [g.token_ids for g in vl_out],
               "hf_text": [g.text for g in hf_out], "vllm_text": [g.text for g in vl_out],
               "vllm_load_seconds": load}, open(out, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 32)
