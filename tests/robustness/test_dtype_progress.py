"""dtype auto (bf16 only where native) and progress lines without a terminal."""

from __future__ import annotations

import logging

import pytest
import torch

from llmrec.dtype import cpu_flags, resolve_dtype
from llmrec.errors import ConfigError
from llmrec.progress import progress_bar


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "avx512f", "avx512bw"}, "float32"),       # AVX-512 without bf16: emulated, the slow case
    ({"avx2", "fma"}, "float32"),
    ({"avx512f", "avx512_bf16"}, "bfloat16"),
    ({"amx_tile", "amx_bf16"}, "bfloat16"),
    ({"fp", "asimd", "bf16"}, "bfloat16"),               # aarch64 Features
    (set(), "float32"),                                   # unknown CPU: the safe choice
])
def test_auto_takes_bf16_only_with_native_flags(flags, expected, caplog):
    with caplog.at_level(logging.INFO, logger="llmrec"):
        choice, why = resolve_dtype("auto", "cpu", flags=flags, key="model.dtype")
    assert choice == expected
    assert f"model.dtype: {expected} on cpu" in caplog.text and why in caplog.text
    if expected == "bfloat16":
        assert any(f in why for f in flags)


def test_explicit_values_win_and_bad_values_name_the_key():
    assert resolve_dtype("bfloat16", "cpu", flags=set())[0] == "bfloat16"
    assert resolve_dtype("float32", "cpu", flags={"avx512_bf16"})[0] == "float32"
    with pytest.raises(ConfigError, match="model.dtype: 'fp16'"):
        resolve_dtype("fp16", "cpu", key="model.dtype")


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(x86) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_stage2_autocast_follows_the_resolved_dtype(monkeypatch):
    from llmrec.alignment.config import AlignModelConfig
    from llmrec.alignment.model import Aligner

    class Stub:  # the two attributes autocast looks at
        model = object()
        device = torch.device("cpu")

    for flags, on in (({"avx512f"}, False), ({"avx512_bf16"}, True)):
        monkeypatch.setattr("llmrec.dtype.cpu_flags", lambda flags=flags: flags)
        aligner = Aligner.__new__(Aligner)
        torch.nn.Module.__init__(aligner)
        aligner.cfg, aligner.backend = AlignModelConfig(dtype="auto"), Stub()
        ctx = aligner.autocast()
        assert isinstance(ctx, torch.autocast) is on


def test_old_bf16_key_names_dtype():
    from llmrec.alignment.config import AlignRunConfig
    from llmrec.config import from_dict

    with pytest.raises(ConfigError, match=r"'model.bf16' was replaced by 'model.dtype'"):
        from_dict(AlignRunConfig, {"model": {"bf16": True}})


def test_progress_logs_bounded_lines_without_a_terminal(caplog):
    clock = iter(range(0, 10_000, 10))  # each tqdm time() call advances 10 s

    with caplog.at_level(logging.INFO, logger="llmrec"):
        bar = progress_bar(total=100, desc="align beat", interactive=False, every_s=30)
        bar._time = lambda: next(clock)
        for step in range(100):
            bar.update(1)
            bar.set_postfix(nll=f"{3.0 - step / 100:.3f}")  # the training loops do this every step
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "llmrec"]
    assert 2 <= len(lines) < 100, lines  # bounded by the interval, not one per step
    assert lines[-1].startswith("align beat: 100%") and "100/100" in lines[-1]
    assert all("it]" in ln or "s/it" in ln or "it/s" in ln for ln in lines[1:])  # rate shown


def test_progress_is_silent_when_disabled(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="llmrec"):
        for _ in progress_bar(range(3), enabled=False, interactive=False):
            pass
    assert not caplog.records and capsys.readouterr().err == ""


def test_align_train_on_this_cpu_logs_its_dtype_choice(stage1, tmp_path):
    """One real run: `llmrec align train` with the real SmolLM2 on this machine's CPU picks the dtype
    from the CPU's own flags (float32 without native bf16) and says so; its progress shows without
    a terminal."""
    import subprocess
    import sys

    from llmrec.dtype import NATIVE_CPU_FLAGS

    native = sorted(cpu_flags() & set(NATIVE_CPU_FLAGS))
    expected = "bfloat16" if native else "float32"
    done = subprocess.run([sys.executable, "-m", "llmrec", "align", "train", f"model.tokenizer_run={stage1}",
                           "model.llm=smollm2-135m", "train.max_train_pairs=8", "train.batch_size=4",
                           "train.max_target_tokens=12", f"train.out_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"model.dtype: {expected} on cpu" in done.stderr, done.stderr[-3000:]
    assert (", ".join(native) if native else "bf16 would be emulated") in done.stderr
    assert "align evidence: 100%" in done.stderr and "2/2" in done.stderr  # the default method; progress, no tty


from tests.alignment.conftest import stage1  # noqa: E402,F401  (fixture)
