"""Convert checkpoints of the old pickle format (``*.pt``) into safetensors checkpoints.

Old checkpoints are torch pickles holding tensors, numbers, strings and numpy arrays (RNG states).
They are read with ``torch.load(weights_only=True)`` plus an allowlist of the numpy array
constructors only, so converting executes nothing either: a file that needs any other global (a
pickle carrying code) is refused, naming what it asked for. Reached by ``llmrec checkpoint convert``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from llmrec.errors import ArtifactError
from llmrec.train.checkpoint import SUFFIX, save_checkpoint



def _numpy_globals() -> list:
    """What pickled numpy arrays need (array, dtype and their rebuild function), nothing else."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    return [np.ndarray, np.dtype, _reconstruct, *dtypes]


def convert(path: str | Path, out: str | Path | None = None) -> Path:
    """Read the legacy checkpoint ``path`` and write it as ``out`` (default: same name, .safetensors)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is not a file")
    out = Path(out) if out is not None else path.with_suffix(SUFFIX)
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "protocol 4": the refusal below is the one line
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # refused or unreadable: nothing in the file was run
        try:
            wanted = [g for g in get_unsafe_globals_in_checkpoint(str(path)) if not g.startswith("numpy.")]
        except Exception:  # not even a torch checkpoint (a bare pickle, a truncated file)
            wanted = []
        why = f"it asks for {', '.join(wanted)}" if wanted else type(exc).__name__
        raise ArtifactError(f"{path}: refused, not a plain legacy checkpoint of tensors, numbers and numpy "
                            f"arrays ({why}); nothing in it was executed") from None
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
