"""The minimal model: a softmax gate over context labels, an end-of-context slot and f_hat(x).

Slots, in this order along the last axis of the weights: the k context examples (logit
w*<x, x_i> + b, value y_i), the end-of-context slot (logit c, value 0) and the query itself
(logit 0, value f_hat(x)). Only w, b, c and, in the MLP variant, f_hat's weights are learned.

`eoc="context_mean"` is a second reading of the paper: its appendix A lets the first layer pool
the context at the end-of-context token, and its section 3 text has that slot return the average
of the context labels (case 2). There the slot's value is mean(y_i) and its logit
w*<x, mean(x_i)> + c. The default, `eoc="zero"`, is the project's specification.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import SmoothTarget


EOC_KINDS = ("zero", "context_mean")


class FixedErrorEstimator(nn.Module):
    """f_hat = f + error * g, with g an independent smooth function of unit variance.

    Its MSE is error**2 by construction, which lets a run place f_hat between the error of
    copying a near label and that of copying a random one (the paper's assumption (A)).
    """

    def __init__(self, target: SmoothTarget, error: float, seed: int):
        super().__init__()
        self.target = target
        self.error = error
        t = target
        self.distortion = SmoothTarget(t.directions.shape[1], len(t.phases), t.frequency, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_np = x.detach().cpu().numpy()
        value = self.target(x_np) + self.error * self.distortion(x_np)
        return torch.from_numpy(value).to(x.dtype)


class MLPEstimator(nn.Module):
    """A small tanh MLP for f_hat, trained jointly with the gate (appendix A.5.4's setting).

    Weights come from a numpy generator so that the seed stays local to the run.
    """

    def __init__(self, dim: int, hidden: int, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        sizes = [dim, hidden, hidden, 1]
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layer = nn.Linear(fan_in, fan_out, dtype=torch.float64)
            bound = 1.0 / np.sqrt(fan_in)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, (fan_out, fan_in))))
                layer.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, fan_out)))
            self.layers.append(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers[:-1]:
            h = torch.tanh(layer(h))
        return self.layers[-1](h).squeeze(-1)


class MinimalModel(nn.Module):
    """Prediction = sum over slots of softmax(logits) * values; see the module docstring."""

    def __init__(self, in_weights: nn.Module, eoc: str = "zero",
                 w: float = 0.0, b: float = 0.0, c: float = 0.0):
        super().__init__()
        if eoc not in EOC_KINDS:
            raise ValueError(f"unknown end-of-context slot {eoc!r}; choose one of {EOC_KINDS}")
        self.in_weights = in_weights
        self.eoc = eoc
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))
        self.c = nn.Parameter(torch.tensor(c, dtype=torch.float64))

    def gate_parameters(self) -> list[nn.Parameter]:
        return [self.w, self.b, self.c]

    def slot_weights(self, x: torch.Tensor, ctx_x: torch.Tensor) -> torch.Tensor:
        """(n, k+2) softmax weights: k context slots, then end-of-context, then self."""
        cosines = torch.einsum("nd,nkd->nk", x, ctx_x)
        context_logits = self.w * cosines + self.b
        n = x.shape[0]
        eoc_logit = self.c.expand(n, 1)
        if self.eoc == "context_mean":
            eoc_logit = self.w * torch.einsum("nd,nd->n", x, ctx_x.mean(dim=1)).unsqueeze(1) + self.c
        self_logit = torch.zeros(n, 1, dtype=context_logits.dtype)
        return torch.softmax(torch.cat([context_logits, eoc_logit, self_logit], dim=-1), dim=-1)

    def forward(self, x: torch.Tensor, ctx_x: torch.Tensor, ctx_y: torch.Tensor):
        """Returns (prediction (n,), slot weights (n, k+2))."""
        weights = self.slot_weights(x, ctx_x)
        n = x.shape[0]
        if self.eoc == "context_mean":
            eoc_value = ctx_y.mean(dim=1, keepdim=True)
        else:
            eoc_value = torch.zeros(n, 1, dtype=ctx_y.dtype)
        values = torch.cat([ctx_y, eoc_value,
                            self.in_weights(x).unsqueeze(-1)], dim=-1)
        return (weights * values).sum(dim=-1), weights
