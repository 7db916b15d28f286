"""torch.compile for a server: the UNet compiled for the request shapes it was warmed up on, eager for the rest.

``torch.compile`` compiles again for every input shape it has not seen, inside the call that brings it (about a
minute for the built-in UNet on 2 CPU cores): a server that compiled only its default request would stall a user
who asks for 3 images instead of 4. ``CompiledForShapes`` replaces a module's ``forward``: the compiled one for
the shapes of ``warm_up``'s calls, the eager one for any other; a call that would compile again anyway (a guard
other than the shape failed: a sampler whose timesteps are floats, say) runs eagerly, and the warmed-up calls stay
compiled (``torch.compiler.set_stance("fail_on_recompile")``).

    unet = CompiledForShapes(pipe.unet)
    seconds = unet.warm_up(lambda: pipe(["a red circle"], num_images_per_prompt=4))
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import torch


class CompiledForShapes:
    """``module.forward`` = this: compiled for the warmed-up shapes of its first argument, eager otherwise."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.eager = module.forward
        self.own_forward = "forward" in vars(module)  # patched on the instance before: put back, not deleted
        self.compiled = torch.compile(module.forward, dynamic=False)
        self.shapes: set[tuple[int, ...]] = set()  # first-argument shapes served compiled
        self.warming = False
        self.refused: set[str] = set()  # guard failures already reported
        module.forward = self

    def __call__(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        shape = tuple(sample.shape)
        if self.warming:
            self.shapes.add(shape)
            return self.compiled(sample, *args, **kwargs)
        if shape not in self.shapes:
            return self.eager(sample, *args, **kwargs)
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                return self.compiled(sample, *args, **kwargs)
        except RuntimeError as err:  # torch raises a plain RuntimeError for the stance (RecompileError elsewhere)
            if "fail_on_recompile" not in str(err):
                raise
            # another guard failed (e.g. a sampler whose timesteps are floats): this call runs eagerly, the
            # warmed-up calls stay compiled
            reason = next((line.strip() for line in str(err).splitlines() if line.strip().startswith("- ")), "")
            if reason not in self.refused:
                self.refused.add(reason)
                print(f"t2i: a call with input {shape} would compile again ({reason.lstrip('- ')}); such calls run "
                      "eagerly", file=sys.stderr)
            return self.eager(sample, *args, **kwargs)

    def warm_up(self, request: Callable[[], Any]) -> float:
        """Run ``request`` (calls that reach the module) with compilation on; its input shapes are served compiled
        from then on. Returns its wall seconds (the compilation, mostly)."""
        start = time.perf_counter()
        self.warming = True
        try:
            request()
        finally:
            self.warming = False
        return time.perf_counter() - start

    def remove(self) -> None:
        """Give the module back its eager forward."""
        if self.own_forward:
            self.module.forward = self.eager
        else:
            del self.module.forward  # the class's forward again
