"""The CPU fast path of the MiniLM embedder: its Linear layers in int8 with fixed input ranges.

Per-channel SmoothQuant scales (alpha 0.85) move activation outliers into the weights; each
layer's input range is calibrated once on a fixed text list and pinned, so a text's vector does
not depend on its batch (cache-safe). The FFN down-projections stay fp32. Cosine to plain fp32
>= 0.99 on every sentence benchmarked (bench/RESULTS.md, Embedding).
"""
from __future__ import annotations

import functools

# Calibration text for the int8 ranges: fixed (so the vectors are), varied in length and register.
_CALIBRATION = [
    "The committee approved the budget for next year after a long debate.",
    "Please send me the report by Friday.", "Thanks!", "What is the capital of Lithuania?",
    "In 2019, sales rose by 14.5% to EUR 3.2 billion, driven mainly by demand in Asia and the US.",
    "The patient should take one 20 mg tablet twice a day, with food, for no longer than 10 days.",
    "How many singers do we have who were born after 1990 and sing in French?",
    "Set an alarm for 6:30 tomorrow morning and remind me to call Dr. Smith at noon.",
    "Der Rat hat die Verordnung am Montag angenommen.", "Madam President, I would like to thank the rapporteur.",
    "He walked slowly along the river, thinking about the letter he had never sent to his brother.",
    "Show the names of all employees whose salary is above the average salary of their department.",
    "Mix the flour, sugar and eggs; then bake for 25 minutes at 180 degrees.",
    "The court ruled that the contract was void because neither party had signed it before the deadline "
    "set out in article 7, paragraph 2, of the agreement concluded between them in March.",
    "A B C", "Error 404: the page you requested could not be found.", "Yes, of course.",
    "Climate change, migration and the single market will dominate the agenda of the next Parliament.",
    "She said: \"I don't know where they've gone, but they'll be back soon.\"",
    "List every flight from Boston to Denver that leaves before 10 am on weekdays.",
]
_FFN_OUT = "output.dense"  # BERT naming: the FFN down-projection (its GELU inputs do not survive int8)


def int8_available() -> bool:
    import torch

    return hasattr(torch.ao.quantization, "quantize_dynamic") and bool(
        {"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines))


def _fixed_range_linear(linear, absmax, lowest, highest, alpha: float = 0.85, margin: float = 1.2):
    """y = W x in int8 with two fixes for MiniLM. Per-channel scales (SmoothQuant) move activation
    outlier channels into the weights. The input is clamped to its calibrated range and an anchor
    row holding that range's ends is appended, which pins the dynamic quantiser's scale: a text's
    vector then no longer depends on which texts share its batch (cache-safe, reproducible), up
    to rare int8 rounding flips set off by fp32 rounding noise (cosine >= 0.998 in the benchmark)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    weight = linear.weight.detach()
    scale = (absmax.clamp(min=1e-5) ** alpha / weight.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    inner = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    inner.weight.data = weight * scale
    if linear.bias is not None:
        inner.bias.data = linear.bias.detach().clone()
    inner.qconfig = per_channel_dynamic_qconfig
    module = _fixed_range_class()()
    module.inner = torch.ao.nn.quantized.dynamic.Linear.from_float(inner)
    module.register_buffer("inv_scale", 1.0 / scale)
    module.low = min(0.0, float((lowest / scale).min()) * margin)
    module.high = max(0.0, float((highest / scale).max()) * margin)
    anchor = torch.zeros(1, linear.in_features)
    anchor[0, 0], anchor[0, 1] = module.low, module.high
    module.register_buffer("anchor", anchor)
    return module


@functools.lru_cache(maxsize=1)
def _fixed_range_class():
    import torch

    class FixedRangeInt8Linear(torch.nn.Module):
        def forward(self, x):
            flat = x.reshape(-1, x.shape[-1])
            scaled = torch.empty(flat.shape[0] + 1, flat.shape[1], dtype=flat.dtype, device=flat.device)
            torch.mul(flat, self.inv_scale, out=scaled[:-1]).clamp_(self.low, self.high)
            scaled[-1] = self.anchor[0]
            out = self.inner(scaled)[:-1]
            return out.reshape(*x.shape[:-1], out.shape[-1])

    return FixedRangeInt8Linear


def quantize_cpu(model) -> None:
    """Swap the encoder's Linear layers (all but the FFN down-projections) for fixed-range int8."""
    import warnings

    import torch

    targets = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
               and "pooler" not in name and not (name.endswith(_FFN_OUT) and ".attention." not in name)}
    seen: dict[str, list] = {}

    def record(name):
        def hook(_module, inputs, _output):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
            now = [x.abs().amax(0), x.amin(0), x.amax(0)]
            old = seen.get(name)
            seen[name] = now if old is None else [torch.maximum(old[0], now[0]), torch.minimum(old[1], now[1]),
                                                  torch.maximum(old[2], now[2])]
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in targets.items()]
    model.encode(_CALIBRATION, batch_size=len(_CALIBRATION), show_progress_bar=False)
    for handle in handles:
        handle.remove()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices; the kernels are current
        for name, module in targets.items():
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, _fixed_range_linear(module, *seen[name]))
