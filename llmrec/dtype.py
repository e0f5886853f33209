"""Pick the compute dtype: bfloat16 only where the hardware runs it natively.

On a CPU without native bf16 instructions, bf16 autocast is emulated and was measured 8-17x SLOWER
than float32 (stage 2 first step 230 s vs 30 s), so ``auto`` takes bf16 only when the CPU reports
``avx512_bf16`` or ``amx_bf16`` (x86) or ``bf16`` (aarch64), or on a CUDA device that supports it.
torch's oneDNN check is not used for the decision: it also says yes on AVX-512 CPUs that lack the
bf16 instructions, which are exactly the slow case.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from llmrec.errors import ConfigError

log = logging.getLogger("llmrec")

CHOICES = ("auto", "float32", "bfloat16")
NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (x86 ``flags``, aarch64 ``Features``); empty if unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def resolve_dtype(requested: str, device: torch.device | str = "cpu", *, flags: set[str] | None = None,
                  key: str = "dtype") -> tuple[str, str]:
    """``(dtype name, why)`` for ``requested`` in auto|float32|bfloat16 on ``device``; logs the choice."""
    if requested not in CHOICES:
        raise ConfigError(f"{key}: {requested!r} is not one of {list(CHOICES)}")
    device = torch.device(device)
    if requested != "auto":
        choice, why = requested, "set explicitly"
    elif device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        choice, why = ("bfloat16" if ok else "float32"), f"CUDA device {'supports' if ok else 'lacks'} bf16"
    else:
        seen = sorted((cpu_flags() if flags is None else flags) & set(NATIVE_CPU_FLAGS))
        choice = "bfloat16" if seen else "float32"
        why = (f"CPU reports {', '.join(seen)}" if seen
               else f"CPU reports none of {', '.join(NATIVE_CPU_FLAGS)} (bf16 would be emulated, several times slower)")
    log.info("%s: %s on %s (%s)", key, choice, device.type, why)
    return choice, why
