"""Regime comparison on a real pretrained model (issue 5, part 2): zero / random / similar /
contrastive LoRA fine-tunes of SmolLM2-135M-Instruct and the untuned base, on align-synth-v1."""

# The task the committed results were built with: the first generator, whose test labels sit in
# the pool (see REPORT.md); the default `align-synth` follows the paper's appendix C.4 instead.
TASK = "align-synth-v1"

