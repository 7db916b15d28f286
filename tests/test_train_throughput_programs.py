"""benchmarks/train_throughput.py: which programs a run times (the timing itself is the benchmark's, not a test's)."""

import argparse
from pathlib import Path

import pytest

from benchmarks.train_throughput import REFERENCE, programs


def _args(**given) -> argparse.Namespace:
    defaults = dict(diffusers_script=Path("train_text_to_image.py"), model_dir=Path("model"), model="shapes-ldm",
                    resolution=32, batch_size=32, steps=10, warmup=3, with_compile=False, only=None,
                    device="cpu")
    return argparse.Namespace(**{**defaults, **given})


def test_compile_rows_combine_with_the_cache_and_the_bfloat16_copy():
    runs = programs(_args(with_compile=True), Path("data"), Path("tmp"))
    assert runs["t2i train ldm --cache --bf16-weights --compile"][-3:] == ["--cache", "--bf16-weights", "--compile"]
    assert "--compile" not in runs["t2i train ldm --cache"]


def test_only_keeps_the_named_rows_and_the_reference():
    runs = programs(_args(with_compile=True, only=["t2i train ldm --cache --compile"]), Path("data"), Path("tmp"))
    assert list(runs) == [REFERENCE, "t2i train ldm --cache --compile"]
    with pytest.raises(SystemExit, match="choose among"):
        programs(_args(only=["t2i train ldm --cache --compile"]), Path("data"), Path("tmp"))  # needs --with-compile


def test_on_a_gpu_our_rows_leave_the_cpu_and_add_autocast():
    """--device cuda: no row of ours keeps --cpu (it once was in every row), and bf16 autocast is a row."""
    cpu = programs(_args(), Path("data"), Path("tmp"))
    gpu = programs(_args(device="cuda"), Path("data"), Path("tmp"))
    assert all("--cpu" in argv for name, argv in cpu.items() if name.startswith("t2i"))
    assert not any("--cpu" in argv for argv in gpu.values())
    assert gpu["t2i train ldm --cache --fused-adamw --mixed-precision bf16"][-2:] == ["--mixed-precision", "bf16"]
    assert set(gpu) - set(cpu) == {"t2i train ldm --cache --fused-adamw --mixed-precision bf16"}
