"""Regime comparison on a real pretrained model (issue 5, part 2): zero / random / similar /
contrastive LoRA fine-tunes of SmolLM2-135M-Instruct and the untuned base, on align-synth."""
