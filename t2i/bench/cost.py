"""What a figure cost: parameters, training FLOPs per step, sampling time and FLOPs per image.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts the
matrix products and convolutions that dominate a network (``mm``, ``addmm``, ``bmm``,
``convolution`` and their backward, scaled-dot-product attention), forward and backward,
at 2 FLOPs per multiply-add. Element-wise ops (activations, norms, optimiser updates) are
not counted. For a ``Linear(i, o)`` on a batch of ``B``: forward ``2 B i o``; backward
``2 B i o`` for the weight gradient plus ``2 B i o`` for the input gradient when the input
needs one (so ``4 B i o`` for a first layer, ``6 B i o`` for a hidden one: Kaplan et al.
2020, "C = 6 N" per token). Attention ``softmax(Q K^T) V`` is ``4 B H L S D`` forward and
2.5 times that backward (torch's formulas); torch registers them for the GPU's fused kernels
only, so ``flop_counter`` adds the CPU's fused kernel, which torch counted as 0 FLOPs (the
same step then counted 12-14% fewer FLOPs on a CPU than on a GPU for latent diffusion).

One training step of a trainer we do not want to open up is counted by difference:
``F(run of k + 1 steps) - F(run of k steps)``: set-up, the final sample grid and the model
export are the same in both runs and cancel, what is left is exactly one real step
(data encoding by frozen towers included, when the trainer does it per step).

A sweep's CPU-hours are the process CPU time each trained stage took (``record_stage_time``,
summed per run by ``cpu_seconds_to``), not wall time, which a shared machine stretches.

Budgets are counted in these FLOPs (or in images seen), never in wall-clock seconds, which
a shared machine makes noisy; seconds are still measured and reported beside them.

    python -c "from t2i.bench.cost import demo; demo()"
"""

from __future__ import annotations

import importlib
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop

from t2i.io import atomic_write
from t2i.generator import Generator


def _on_tensors(formula: Callable[..., int]) -> Callable[..., int]:
    """One of torch's registered formulas (which take the op's tensors) as a ``custom_mapping`` entry."""

    def count(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        return formula(*args, out_val=out_val, **kwargs)

    count._get_raw = True  # FlopCounterMode passes tensors as they are: the formula reads their shapes itself
    return count


def cpu_attention_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode entries for the CPU's fused scaled-dot-product attention (forward and backward), which
    torch's counter leaves at 0 FLOPs: the formulas it uses for the GPU's fused kernels (the same arguments)."""
    aten = torch.ops.aten
    pairs = (("_scaled_dot_product_flash_attention_for_cpu", sdpa_flop),
             ("_scaled_dot_product_flash_attention_for_cpu_backward", sdpa_backward_flop))
    return {getattr(aten, name): _on_tensors(formula) for name, formula in pairs if hasattr(aten, name)}


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that counts attention on the CPU too (``cpu_attention_formulas``)."""
    return FlopCounterMode(display=False, custom_mapping=cpu_attention_formulas())


def count_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` under ``flop_counter()``; return ``(its result, total FLOPs)``."""
    with flop_counter() as counter:
        result = fn()
    return result, int(counter.get_total_flops())


def step_flops_by_difference(train_for: Callable[[int], Any], base_steps: int = 1) -> int:
    """FLOPs of one training step: ``F(train_for(base_steps + 1)) - F(train_for(base_steps))``.

    ``train_for(steps)`` must run the same training from scratch for ``steps`` steps (same
    seed, same output handling). Raises if the difference is not positive (a trainer whose
    per-step work is not visible to the counter, or set-up work that depends on ``steps``).
    """
    if base_steps < 1:
        raise ValueError(f"base_steps must be >= 1, got {base_steps!r}")
    _, short = count_flops(lambda: train_for(base_steps))
    _, long = count_flops(lambda: train_for(base_steps + 1))
    per_step = long - short
    if per_step <= 0:
        raise RuntimeError(f"one more training step counted {per_step} FLOPs ({long} - {short}); "
                           "the trainer's per-step work is not visible to FlopCounterMode")
    return per_step


def train_fresh(trainer: str, argv: list[str], folder: Path, steps: int) -> None:
    """One run of the ``t2i train`` module ``trainer`` (e.g. ``"train.ldm"``) from scratch: ``steps`` steps into an
    emptied ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    importlib.import_module(trainer).main(argv + [f"--out={folder}", f"--steps={steps}"])


def trainer_step_flops(trainer: str, argv: list[str], root: Path) -> int:
    """FLOPs of one optimiser step of the ``t2i train`` module ``trainer`` run with ``argv``: runs of 1 and 2 steps
    written under ``root`` (removed afterwards), counted by difference."""
    per_step = step_flops_by_difference(lambda steps: train_fresh(trainer, argv, root / str(steps), steps))
    shutil.rmtree(root, ignore_errors=True)
    return per_step


def without_options(argv: list[str], *names: str) -> list[str]:
    """``argv`` less the options ``names`` in every spelling: ``--name``, ``--name=V``, ``--name V`` (a value is the
    next token when it does not start with ``--``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            if not arg.startswith("--"):
                continue
        if arg in names:
            skip = True
        elif not arg.startswith(tuple(n + "=" for n in names)):
            out.append(arg)
    return out


def trainer_cache_flops(trainer: str, argv: list[str], root: Path, cache_option: str = "--cache") -> dict[str, int]:
    """What a trainer's ``cache_option`` (``ldm --cache``: every image and caption encoded once before the first
    step) costs once and per step: ``{"step": F_cached(2) - F_cached(1), "once": C, "plain_step": the step
    without the cache}``.

    One cached step and one uncached step differ by the one-off build and by the step itself:
    ``F_cached(1) = S + C + step_cached + T`` and ``F_plain(1) = S + step_plain + T`` (S the set-up, T the final
    samples, both shared), so ``C = F_cached(1) - F_plain(1) - step_cached + step_plain``. ``argv`` is the plain
    run's; a ``--cache-dir`` in it is dropped (a folder built by an earlier run would hide the build)."""
    plain = without_options(argv, cache_option, "--cache-dir")
    totals: dict[tuple[bool, int], int] = {}
    for cached in (False, True):
        for steps in (1, 2):
            folder = root / f"{'cached' if cached else 'plain'}-{steps}"
            run_argv = plain + ([cache_option] if cached else [])
            _, totals[cached, steps] = count_flops(lambda: train_fresh(trainer, run_argv, folder, steps))
    shutil.rmtree(root, ignore_errors=True)
    step = {cached: totals[cached, 2] - totals[cached, 1] for cached in (False, True)}
    once = totals[True, 1] - totals[False, 1] - step[True] + step[False]
    if min(step.values()) <= 0 or once <= 0:
        raise RuntimeError(f"{cache_option} counted {once} FLOPs once and {step[True]} per step (plain step "
                           f"{step[False]}): the trainer's work is not visible to FlopCounterMode")
    return {"step": step[True], "once": once, "plain_step": step[False]}


def count_parameters(model: torch.nn.Module | Generator, include_text_encoder: bool = False) -> dict[str, int]:
    """Parameters of a module or a generator: ``{"total": n, <part>: n, ...}``.

    A generator's parts are its ``modules()``; its ``"text_encoder"`` is left out unless
    ``include_text_encoder`` (frozen text towers are shared by every text-conditional family of
    a comparison), and so is an ``"image_encoder"`` (unCLIP's frozen CLIP image tower: used for
    variations, not to draw from text). Shared tensors are counted once.
    """
    parts: dict[str, int] = {}
    seen: set[int] = set()
    named = {"model": model} if isinstance(model, torch.nn.Module) else model.modules()
    for name, module in named.items():
        if (name == "text_encoder" and not include_text_encoder) or name == "image_encoder":
            continue
        n = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        parts[name] = n
    return {"total": sum(parts.values()), **parts}


def sampling_cost(generator: Generator, request: dict[str, Any], repeats: int = 2,
                  warmup: bool = True) -> dict[str, float]:
    """Time and FLOPs of ``generator.generate(**request)``: ms and GFLOP per image, images/s.

    The time is the median of ``repeats`` timed calls (after one untimed warm-up call);
    the FLOPs are counted on one more call, the text encoder included (it runs per request).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    if warmup:
        generator.generate(**request)
    seconds = []
    count = 1
    for _ in range(repeats):
        start = time.perf_counter()
        images = generator.generate(**request)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        count = len(images)
    _, flops = count_flops(lambda: generator.generate(**request))
    t = statistics.median(seconds)
    return {"ms_per_image": 1000 * t / count, "images_per_s": count / t, "gflop_per_image": flops / count / 1e9,
            "batch": count}


def _whole_rows(lines: list[str]) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` lines that parse: a trainer still writing leaves its last line half-written."""
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return [row for row in rows if isinstance(row, dict)]


def training_images_per_s(metrics_jsonl: str | Path, skip_first: bool = True, up_to: int | None = None) -> float | None:
    """Median ``images_per_s`` the runtime logged (``metrics.jsonl``) in the rows up to step ``up_to`` (a run
    trained on since, by a longer ladder, keeps its rate to the report's top rung); the first row (warm-up) is
    skipped. A half-written last row (a trainer still writing) is passed over."""
    path = Path(metrics_jsonl)
    if not path.is_file():
        return None
    rows = [row for row in _whole_rows(path.read_text().splitlines()) if up_to is None or row.get("step", 0) <= up_to]
    values = [row["images_per_s"] for row in rows if "images_per_s" in row]
    if skip_first and len(values) > 1:
        values = values[1:]
    return statistics.median(values) if values else None


def logged_step(metrics_jsonl: str | Path) -> int | None:
    """The last step the runtime logged in ``metrics.jsonl`` (None: no row yet). Read while a trainer writes it,
    so a half-written or rewritten last line is passed over."""
    path = Path(metrics_jsonl)
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    steps = [row["step"] for row in _whole_rows(lines) if "step" in row]
    return int(steps[-1]) if steps else None


def record_stage_time(folder: str | Path, steps: int, cpu_s: float, wall_s: float) -> None:
    """Keep the process CPU and wall seconds of the training stage that ended at ``steps`` (in the run
    folder's ``bench_stage_time.json``).

    A stage already recorded keeps its record: a rerun after a kill between the trainer's end and the
    snapshot re-enters the trainer only to export, which must not replace the real cost."""
    path = Path(folder) / "bench_stage_time.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    if str(steps) not in times:
        times[str(steps)] = {"cpu_s": cpu_s, "wall_s": wall_s}
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(times, indent=2) + "\n"))
    (Path(folder) / PARTIAL_STAGE).unlink(missing_ok=True)  # the stage is whole: nothing of it is carried any more


# a stage trained in segments (``t2i bench --segment-minutes``) keeps what its finished segments cost here
PARTIAL_STAGE = "bench_stage_partial.json"


def record_partial_stage(folder: str | Path, stage: int, step: int, cpu_s: float, wall_s: float) -> None:
    """Keep the process CPU and wall seconds the stage ending at ``stage`` has cost up to its checkpoint at
    ``step`` (written after that checkpoint): a bench killed later in the stage resumes from that checkpoint and
    adds these seconds, so the stage's recorded cost is what training it took, its interruption left out."""
    record = {"stage": stage, "step": step, "cpu_s": cpu_s, "wall_s": wall_s}
    atomic_write(Path(folder) / PARTIAL_STAGE, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))


def partial_stage(folder: str | Path, stage: int) -> dict[str, float] | None:
    """What the finished segments of the stage ending at ``stage`` cost (step, cpu_s, wall_s), or None."""
    path = Path(folder) / PARTIAL_STAGE
    record = json.loads(path.read_text()) if path.is_file() else None
    return record if record is not None and record["stage"] == stage else None


def cpu_seconds_to(folder: str | Path, stages: list[int]) -> list[float] | None:
    """Process CPU seconds spent training one run up to each of ``stages`` (cumulative); None if not recorded."""
    path = Path(folder) / "bench_stage_time.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    if any(str(s) not in times for s in stages):
        return None
    total, out = 0.0, []
    for s in stages:
        total += times[str(s)]["cpu_s"]
        out.append(total)
    return out


def cpu_seconds_per_step(folder: str | Path, stages: list[int]) -> float | None:
    """A run's process CPU seconds per training step over its recorded ``stages`` (trained in order from step 0;
    start-up and any --cache build included): what its next steps are expected to cost. None if not recorded."""
    totals = cpu_seconds_to(folder, stages) if stages else None
    return totals[-1] / stages[-1] if totals else None


def demo() -> None:
    layer = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16)
    _, flops = count_flops(lambda: layer(x).sum().backward())
    print(f"Linear(16, 8), batch 4, fwd+bwd: {flops} FLOPs "
          f"(hand count: 2*B*i*o forward + 2*B*i*o weight gradient = {4 * 4 * 16 * 8})")
    print("parameters:", count_parameters(layer))
