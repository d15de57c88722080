"""Regime comparison on a real pretrained model (issue 5, part 2): zero / random / similar /
contrastive LoRA fine-tunes of SmolLM2-135M-Instruct and the untuned base, on the synthetic task (align-synth by default; the first round used align-synth-v1)."""

# The default task: appendix C.4 (`align-synth`). The first round (results default, scaled, ablation*)
# was built with `align-synth-v1`, the first generator, whose test labels sit in
# the pool (see REPORT.md); the default `align-synth` follows the paper's appendix C.4 instead.
TASK = "align-synth"

