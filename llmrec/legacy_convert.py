"""Convert checkpoints of the old pickle format (``*.pt``) into safetensors checkpoints.

This is the ONE place in llmrec that unpickles: ``torch.load(weights_only=False)`` can execute code
stored in the file. It is reached only by ``llmrec checkpoint convert``, which the user runs
knowingly on files they trust; nothing else imports this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmrec.errors import ArtifactError
from llmrec.train.checkpoint import SUFFIX, save_checkpoint

WARNING = ("warning: converting unpickles the file, which EXECUTES any code stored in it; only convert "
           "checkpoints you wrote yourself or otherwise trust")


def convert(path: str | Path, out: str | Path | None = None) -> Path:
    """Read the legacy checkpoint ``path`` and write it as ``out`` (default: same name, .safetensors)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is not a file")
    out = Path(out) if out is not None else path.with_suffix(SUFFIX)
    print(WARNING, file=sys.stderr)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure: the file is not a readable torch checkpoint
        raise ArtifactError(f"{path}: not a readable legacy checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise ArtifactError(f"{path}: holds a {type(payload).__name__}, not a checkpoint dict")
    data = (payload.get("run_config") or {}).get("data")
    if isinstance(data, dict):  # written before hash splits: keep the permutation split
        data.setdefault("explanation_split_version", 1)
    model = (payload.get("config") or {}).get("model")
    if isinstance(model, dict) and "bf16" in model:  # stage-2 key renamed since: bf16 -> dtype
        model["dtype"] = "bfloat16" if model.pop("bf16") else "float32"
    train = (payload.get("config") or {}).get("train")
    if isinstance(train, dict) and "grad_clip" in train:  # renamed: grad_clip (0 = off) -> max_grad_norm
        clip = train.pop("grad_clip")
        train["max_grad_norm"] = clip if clip and clip > 0 else None
    try:
        save_checkpoint(out, payload)
    except TypeError as exc:
        raise ArtifactError(f"{path}: cannot convert ({exc})") from None
    return out
