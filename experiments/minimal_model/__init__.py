"""The paper's minimal model (section 3), simulated on a regression task on the unit sphere.

A query's prediction is a softmax mixture of the context labels (logits w*<x, x_i> + b), an
end-of-context slot (value 0, logit c) and an in-weights estimate f_hat(x) (logit 0). Training it
under different context regimes shows which of in-context copying, in-weights prediction or a
similarity-gated switch each regime teaches. `python -m experiments.minimal_model.run` reproduces
the tables and figures of experiments/REPORT.md section 1.
"""
