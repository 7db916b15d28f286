"""t2i.diffusion.compiled: a server's UNet runs compiled only for the shapes compiled at launch, so no request
compiles (about a minute on CPU) inside itself; ``t2i app --compile`` gives the images eager gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2i.diffusion.compiled import CompiledForShapes


class Counting:
    """Stands for the compiled forward: counts its calls, answers like the eager one (or raises ``error``)."""

    def __init__(self, eager, error: Exception | None = None):
        self.eager, self.error, self.calls = eager, error, 0

    def __call__(self, sample, *args, **kwargs):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.eager(sample, *args, **kwargs)


def test_only_the_warmed_up_shapes_run_compiled():
    layer = torch.nn.Linear(3, 2)
    expected = layer(torch.ones(4, 3))
    wrapped = CompiledForShapes(layer)
    assert layer.forward is wrapped
    wrapped.compiled = fake = Counting(wrapped.eager)
    wrapped.warm_up(lambda: layer(torch.ones(4, 3)))
    assert wrapped.shapes == {(4, 3)} and fake.calls == 1
    assert torch.equal(layer(torch.ones(4, 3)), expected) and fake.calls == 2  # the warmed-up shape: compiled
    layer(torch.ones(3, 3))  # another size: eager, nothing compiled inside the request
    assert fake.calls == 2 and wrapped.shapes == {(4, 3)}
    wrapped.remove()
    assert torch.equal(layer(torch.ones(4, 3)), expected) and fake.calls == 2 and "forward" not in vars(layer)


def test_a_call_that_would_compile_again_runs_eagerly_and_the_others_stay_compiled(capsys):
    """Regression: torch raises the stance's refusal as a plain RuntimeError (not RecompileError), so a request with
    another sampler (float timesteps against DDIM's integers) failed; and one such call must not turn the
    warmed-up calls eager."""
    layer = torch.nn.Linear(3, 2)
    wrapped = CompiledForShapes(layer)
    wrapped.compiled = Counting(wrapped.eager)
    wrapped.warm_up(lambda: layer(torch.ones(4, 3)))
    refusal = RuntimeError("Detected recompile when torch.compile stance is 'fail_on_recompile'. filename: 'x.py'\n"
                           "    triggered by the following guard failure(s):\n"
                           "    - 0/0: tensor 'args[1]' dtype mismatch. expected Long, actual Float")
    wrapped.compiled = fake = Counting(wrapped.eager, refusal)
    assert torch.equal(layer(torch.ones(4, 3)), wrapped.eager(torch.ones(4, 3)))  # answered eagerly
    layer(torch.ones(4, 3))
    assert fake.calls == 2 and wrapped.shapes == {(4, 3)}  # still tried compiled: the next call may match
    assert capsys.readouterr().err.count("dtype mismatch") == 1  # said once
    wrapped.compiled = Counting(wrapped.eager, RuntimeError("a real error inside the model"))
    with pytest.raises(RuntimeError, match="a real error"):
        layer(torch.ones(4, 3))


@pytest.mark.compile
def test_app_compile_gives_the_eager_images_and_compiles_no_request(tmp_path):
    from apps.models import DEFAULT_IMAGES, AppModels

    from .app_fixtures import build_tiny_models

    models = AppModels.load(build_tiny_models(tmp_path))
    sampler, steps, guidance = models.diffusion_defaults

    def request(n):
        return models.generate("a small red circle in the center", "", 5, n, sampler, steps, guidance, False)

    eager = request(DEFAULT_IMAGES)["diffusion"]
    line = models.compile_diffusion()
    assert line.startswith(f"app: compiled {models.diffusion_name}'s UNet for {DEFAULT_IMAGES}-image requests"), line
    unet_forward = models.diffusion.pipe.unet.forward
    unet_forward.compiled = counted = Counting(unet_forward.compiled)  # the real compiled forward, counted
    compiled = request(DEFAULT_IMAGES)["diffusion"]
    assert counted.calls == steps
    assert max(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() for a, b in zip(eager, compiled)) <= 1
    request(DEFAULT_IMAGES - 1)  # another size: eager
    assert counted.calls == steps
    other = "euler" if sampler != "euler" else "ddim"  # another timestep dtype: eager, and no error
    models.generate("a small red circle in the center", "", 5, DEFAULT_IMAGES, other, steps, guidance, False)
    assert counted.calls == 2 * steps
    assert request(DEFAULT_IMAGES)["diffusion"] == compiled and counted.calls == 3 * steps
