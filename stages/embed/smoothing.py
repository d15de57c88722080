"""SmoothQuant for the int8 encoder: per-input-channel scales that move activation outliers into
the weights before static quantisation.

A BERT LayerNorm output has a few channels far larger than the rest, and a per-tensor activation
range sized for them leaves the others a handful of int8 steps. Each quantised Linear gets
y = (W diag(s)) (x / s) with s = absmax(x)^alpha / absmax(W column)^(1 - alpha), absmax(x) taken
over the calibration texts: the product is unchanged in exact arithmetic, the input is flatter and
the weights (quantised per output channel) absorb the spread. The division stays an explicit Mul
before the MatMul (the LayerNorm output also feeds the residual, so it cannot be folded into it).
"""
from __future__ import annotations

import functools
from typing import Callable


def smoothed_copy(model, texts: list[str], alpha: float, wanted: Callable[[str], bool]):
    """A copy of the sentence-transformers model's transformer whose Linear layers named `wanted`
    are smoothed, with the scales measured on `texts` (one text a forward pass: no padding)."""
    import copy

    import torch

    encoder = copy.deepcopy(model[0].auto_model).eval()
    targets = {name: module for name, module in encoder.named_modules()
               if isinstance(module, torch.nn.Linear) and wanted(name)}
    absmax = _input_absmax(model, encoder, targets, texts)
    for name, linear in targets.items():
        parent, _, leaf = name.rpartition(".")
        setattr(encoder.get_submodule(parent), leaf, _smoothed(linear, absmax[name], alpha))
    return encoder


def _input_absmax(model, encoder, targets: dict, texts: list[str]) -> dict:
    import torch

    seen: dict = {}

    def record(name):
        def hook(_module, inputs, _output):
            now = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).abs().amax(0)
            seen[name] = now if name not in seen else torch.maximum(seen[name], now)
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in targets.items()]
    try:
        with torch.no_grad():
            for text in texts:
                batch = model.tokenizer([text], return_tensors="pt", truncation=True, max_length=model.max_seq_length)
                encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _smoothed(linear, absmax, alpha: float):
    import torch

    weight = linear.weight.detach()
    scale = (absmax.clamp(min=1e-5) ** alpha / weight.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    inner = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    inner.weight.data = weight * scale
    if linear.bias is not None:
        inner.bias.data = linear.bias.detach().clone()
    return _smoothed_linear_class()(inner, 1.0 / scale)


@functools.lru_cache(maxsize=1)
def _smoothed_linear_class():
    import torch

    class SmoothedLinear(torch.nn.Module):
        def __init__(self, inner, inv_scale):
            super().__init__()
            self.inner = inner
            self.register_buffer("inv_scale", inv_scale)

        def forward(self, x):
            return self.inner(x * self.inv_scale)

    return SmoothedLinear

