"""Checkpoints that hold everything needed to rebuild and to resume: weights, optimiser, RNG
states, loop counters, the full run config and the dataset vocabularies. Written atomically.

The format is one safetensors file: every tensor and numpy array is a safetensors entry, and the
rest of the payload (numbers, strings, lists, dicts with any keys, tuples) is JSON in the header's
metadata, with each array replaced by a reference to its entry. Loading therefore never runs code,
unlike ``torch.load`` of a pickle. Files of the older pickle format are refused with the command
that converts them (``llmrec checkpoint convert``, which reads them with ``weights_only=True``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.atomic import atomic_file
from llmrec.errors import ArtifactError

SUFFIX = ".safetensors"
_META_KEY = "llmrec"
_FORMAT = 1


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON-able form of ``obj``; tensors and arrays go to ``tensors`` under a fresh key."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # safetensors refuses views that share storage: each entry gets its own contiguous copy
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"$tensor": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"{where}: numpy array of dtype {obj.dtype} cannot go into a checkpoint")
        key = f"t{len(tensors)}"
        wide = obj.astype(np.int64 if obj.dtype.kind in "biu" else np.float64)
        tensors[key] = torch.from_numpy(np.ascontiguousarray(wide))
        return {"$ndarray": key, "dtype": obj.dtype.str}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {"$items": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")]
                           for k, v in obj.items()]}
    raise TypeError(f"{where}: {type(obj).__name__} cannot go into a checkpoint (tensors, arrays, "
                    "numbers, strings, lists, tuples and dicts only)")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        return tensors[node["$tensor"]]
    if "$ndarray" in node:
        return tensors[node["$ndarray"]].numpy().astype(np.dtype(node["dtype"]))
    if "$tuple" in node:
        return tuple(_decode(v, tensors) for v in node["$tuple"])
    if "$items" in node:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in node["$items"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` (a ``.safetensors`` file) atomically."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": _FORMAT, "payload": _encode(payload, tensors, "checkpoint")}
    # serialised in memory and written through our own temporary: save_file would leave a stray
    # temporary of its own behind a killed writer
    data = save(tensors, metadata={_META_KEY: json.dumps(meta)})
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        f.write(data)


def legacy_hint(path: Path) -> str:
    return (f"{path} is a checkpoint in the old pickle format, which can execute code when loaded; "
            f"llmrec no longer loads it. If you trust the file, convert it with "
            f"`llmrec checkpoint convert {path}`")


def checkpoint_exists(path: str | Path) -> bool:
    """Whether the checkpoint ``path`` exists; only an old-format ``.pt`` beside it is an error
    (resuming would otherwise silently start over)."""
    path = Path(path)
    if path.exists():
        return True
    if path.suffix == SUFFIX and path.with_suffix(".pt").exists():
        raise ArtifactError(legacy_hint(path.with_suffix(".pt")))
    return False


def _is_pickle(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: u64 header length, then the JSON header
        return False
    # torch.save writes a zip archive ("PK\x03\x04"); plain pickles start with the PROTO opcode 0x80
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def resolve(path: str | Path) -> Path:
    """``path`` itself, or for a name without the suffix (``best``) the ``.safetensors`` file; a
    legacy ``.pt`` beside a missing new file is named in the error."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder; give the checkpoint file (e.g. {path / ('best' + SUFFIX)})")
    if path.exists():
        return path
    legacy = path.with_suffix(".pt")
    if path.suffix == SUFFIX and legacy.exists():
        raise ArtifactError(legacy_hint(legacy))
    raise ArtifactError(f"checkpoint {path} does not exist")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; nothing in the file is executed."""
    from safetensors import SafetensorError, safe_open

    path = resolve(path)
    if path.stat().st_size == 0:
        raise ArtifactError(f"{path} is empty (an interrupted copy?); delete it and rerun the step that writes it")
    if _is_pickle(path):
        raise ArtifactError(legacy_hint(path))
    device = str(torch.device(map_location)) if not isinstance(map_location, str) else map_location
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a readable checkpoint (truncated or corrupt: {exc}); "
                            "delete it and rerun the step that writes it") from None
    if meta is None:
        raise ArtifactError(f"{path} is a safetensors file but not an llmrec checkpoint (no '{_META_KEY}' metadata)")
    try:
        meta = json.loads(meta)
        return _decode(meta["payload"], tensors)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: checkpoint metadata is corrupt ({exc})") from None


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild a backbone from a checkpoint alone; returns (model, checkpoint dict)."""
    from llmrec.backbones.registry import build_backbone

    ckpt = load_checkpoint(path, map_location)
    if "backbone" not in ckpt or "model" not in ckpt:
        raise ArtifactError(f"{path} is not a backbone checkpoint (written by `llmrec train`)")
    model = build_backbone(ckpt["backbone"])
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def load_for_eval(path: str | Path, split: str = "test"):
    """A checkpoint's model and its own dataset, rebuilt from the run config the checkpoint holds:
    (model, checkpoint dict, RunConfig, prepared data, the split's EvalExamples, training item counts
    for the popularity metrics). A dataset whose item vocabulary differs from the model's is refused."""
    from llmrec.config import RunConfig, from_dict
    from llmrec.data.prepare import TEST, VALID, prepare, train_counts
    from llmrec.data.sequences import EvalExamples
    from llmrec.errors import ConfigError

    if not Path(path).exists():
        raise ConfigError(f"checkpoint {path} does not exist")
    model, ckpt = load_model(path)
    cfg: RunConfig = from_dict(RunConfig, ckpt["run_config"])
    data = prepare(cfg.data)
    if data.item_vocab != ckpt["item_vocab"]:
        raise ConfigError(f"{path}: the dataset's item vocabulary differs from the one "
                          "the model was trained on (source files changed?)")
    examples = EvalExamples.build(data, TEST if split == "test" else VALID, cfg.data.max_len)
    popularity = train_counts(data).astype(float)
    return model, ckpt, cfg, data, examples, popularity
