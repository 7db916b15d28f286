"""Exponential moving average (EMA) of a model's weights, the copy most generators sample from.

    theta_ema <- d_t * theta_ema + (1 - d_t) * theta,   d_t = min(decay, (1 + t) / (10 + t))

The warm-up ``(1 + t) / (10 + t)`` is TensorFlow's ``ExponentialMovingAverage(num_updates=t)``
(also diffusers' ``EMAModel`` default): early averages do not remember the random init.
Floating-point buffers (BatchNorm statistics) are averaged too; integer buffers are copied.
``Run.ema(model)`` builds one, ``Run.loop`` updates it after every optimiser step and
checkpoints it.

    python -c "from t2i.runtime.ema import demo; demo()"
"""

from __future__ import annotations

import copy

import torch


class EMA:
    """An averaged copy of ``model``: ``ema.model`` is a frozen ``nn.Module`` in eval mode."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay = decay
        self.source = model  # the trained (unwrapped) module
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0  # t in the formula above

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.current_decay()
        ema_float, src_float = [], []
        src_state = self.source.state_dict()
        for name, ema_t in self.model.state_dict().items():
            src_t = src_state[name]
            if ema_t.is_floating_point():
                ema_float.append(ema_t)
                src_float.append(src_t.detach().to(ema_t.dtype))
            else:
                ema_t.copy_(src_t)  # e.g. BatchNorm's num_batches_tracked
        # lerp(a, b, w) = a + w (b - a) = d a + (1 - d) b with w = 1 - d
        torch._foreach_lerp_(ema_float, src_float, 1.0 - d)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "decay": self.decay, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])


def demo() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update()  # first update: d = 0.1, so the average moves 90% of the way
    print("weight", net.weight.data, "ema", ema.model.weight.data, "decay now", ema.current_decay())
