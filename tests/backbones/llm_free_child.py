"""Child process of the LLM-free inference test: score from a checkpoint and report every file
opened and every LLM-side module imported while doing so."""

from __future__ import annotations

import json
import os
import sys

CODE = (".py", ".pyc", ".so", ".pth", ".typed")  # interpreter and library code, not model or data
FORBIDDEN = ("llmrec.llm", "llmrec.interests", "llmrec.alignment", "llmrec.tokenizer", "transformers",
             "sentence_transformers", "vllm", "peft", "llama_cpp", "gguf")
# safetensors is not listed: llmrec's own checkpoints are safetensors files (LLM loading would still pull
# in transformers or gguf, which are)


def main() -> None:
    ckpt, items = sys.argv[1], json.loads(sys.argv[2])
    opened: list[str] = []

    def hook(event, args):
        if event == "open" and isinstance(args[0], str) and not args[0].endswith(CODE) and "/proc/" not in args[0]:
            opened.append(args[0])

    sys.addaudithook(hook)
    import torch

    from llmrec.train.checkpoint import load_model

    before = len(opened)  # torch's own start-up files are not the model's
    model, _ = load_model(ckpt)
    with torch.no_grad():
        scores = model.eval().score({"items": torch.tensor(items)})[:, 1:]
    # import machinery also probes paths that are not files (zip entries, editable-install hooks)
    data_files = sorted({p for p in opened[before:] if os.path.isfile(p) and not p.startswith(("/dev/", "/sys/"))
                         and ".dist-info/" not in p and ".egg-info/" not in p})  # package metadata (entry points)
    mods = sorted(m for m in sys.modules if m.startswith(FORBIDDEN))
    print(json.dumps({"scores": scores.tolist(), "data_files_opened": data_files, "forbidden_modules": mods}))


if __name__ == "__main__":
    main()
