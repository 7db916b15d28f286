"""A UNet training step computed in a bfloat16 copy, with float32 master weights.

Mixed-precision training with master weights (Micikevicius et al. 2018, "Mixed Precision
Training"; bfloat16 instead of float16, so no loss scaling: Kalamkar et al. 2019): the optimiser,
the EMA, gradient clipping and checkpoints see only the float32 UNet (the master); each step
copies its trained weights into a bfloat16 copy, runs forward and backward there, and adds the
copy's gradients, in float32, to the master's. On a CPU with bfloat16 units (AMX, AVX-512 BF16)
convolutions and matmuls run several times faster in bfloat16, but autocast (accelerate's
``--mixed-precision bf16``) casts every weight at every use and keeps norms in float32, which
made the step slower than float32 (``python -m benchmarks.train_levers``).

One exception stays float32: the attention modules (``diffusers.models.attention_processor.Attention``:
projections and softmax attention), because PyTorch's CPU kernel for the backward of bfloat16
scaled-dot-product attention took about half of the bfloat16 step. Their inputs are cast up and
their outputs down by forward hooks.

    step_unet = BF16Compute(unet)            # unet: the float32 master, trained by the optimiser
                                             # (compile=True: torch.compile of the bfloat16 copy's forward)
    loss = diffusion_loss(step_unet, ...)    # float32 in, float32 out
    loss.backward()                          # the master's .grad now holds the gradients
"""

from __future__ import annotations

import copy
from typing import Any

import torch

COMPUTE_DTYPE = torch.bfloat16


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors in ``value`` (nested in tuples, lists and dicts) cast to ``dtype``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


def _float32_inputs(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return _cast(args, torch.float32), _cast(kwargs, torch.float32)


def _compute_dtype_output(module: torch.nn.Module, args: tuple, output: Any) -> Any:
    return _cast(output, COMPUTE_DTYPE)


class BF16Compute(torch.nn.Module):
    """Calls like the UNet it wraps (float32 in, float32 ``.sample`` out), computes in bfloat16.

    The master is not a submodule (only its trained parameters are kept, in ``pairs``), so its
    ``state_dict``, the optimiser and the EMA never see the copy. Gradients reach the master through
    post-accumulate-grad hooks on the copy's trained parameters, during backward, so gradient
    accumulation and clipping work on the master as without this wrapper.
    """

    def __init__(self, master: torch.nn.Module, compile: bool = False):
        super().__init__()
        from diffusers.models.attention_processor import Attention

        self.compute = copy.deepcopy(master).to(COMPUTE_DTYPE)
        for module in self.compute.modules():
            if isinstance(module, Attention):  # float32 (see the module docstring), cast at its edges
                module.float()
                module.register_forward_pre_hook(_float32_inputs, with_kwargs=True)
                module.register_forward_hook(_compute_dtype_output)
        self.pairs = [(m, c) for m, c in zip(master.parameters(), self.compute.parameters()) if m.requires_grad]
        for m, c in self.pairs:
            c.register_post_accumulate_grad_hook(self._to_master(m))
        # a plain function, not a submodule: the copy's parameters stay registered once, under `compute`; the
        # attention modules' hooks are traced into the graph, the gradient hooks run after its backward as usual
        self.compute_forward = torch.compile(self.compute.forward, dynamic=False) if compile else self.compute.forward

    @staticmethod
    def _to_master(master_param: torch.nn.Parameter):
        def hook(param: torch.nn.Parameter) -> None:
            grad = param.grad.float()
            if master_param.grad is None:
                master_param.grad = grad
            else:  # gradient accumulation: micro-batches add up, as on the master itself
                master_param.grad.add_(grad)
            param.grad = None
        return hook

    @torch.no_grad()
    def pull(self) -> None:
        """Copy the master's trained weights into the bfloat16 copy (after every optimiser step)."""
        for m, c in self.pairs:
            c.copy_(m)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.pull()
        out = self.compute_forward(sample.to(COMPUTE_DTYPE), timestep, *_cast(args, COMPUTE_DTYPE),
                                   **_cast(kwargs, COMPUTE_DTYPE))
        out.sample = out.sample.float()
        return out


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); without them bfloat16 is emulated."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def emulation_warning(device: torch.device) -> str | None:
    """A one-line warning when ``--bf16-weights`` would run on a CPU without bfloat16 units, or None.

    Measured on an AVX2-only CPU: the cached step 7.06 s against 0.38-0.40 s in float32 (``benchmarks/RESULTS.md``,
    "1.21-1.31x on a CPU without AVX-512")."""
    if device.type != "cpu" or cpu_has_bfloat16_units():
        return None
    return ("warning: --bf16-weights on a CPU without bfloat16 units (no AVX-512 BF16 or AMX): bfloat16 is emulated "
            "and the step was 18x slower than float32 on an AVX2-only CPU; drop --bf16-weights")


def refusal(num_processes: int, mixed_precision: str) -> str | None:
    """Why ``--bf16-weights`` cannot run with these settings, or None."""
    if num_processes > 1:
        return ("--bf16-weights runs on one process (the copy's gradients bypass DDP's all-reduce); on several "
                "processes or a GPU use --mixed-precision bf16")
    if mixed_precision != "no":
        return f"--bf16-weights already computes in bfloat16: drop --mixed-precision {mixed_precision}"
    return None
