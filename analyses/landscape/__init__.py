"""The intrinsic dimension of objective landscapes (Li, Farkhoor, Liu & Yosinski, ICLR 2018,
"Measuring the Intrinsic Dimension of Objective Landscapes").

Train a model in a random d-dimensional subspace of its D parameters,
theta = theta_0 + P theta_d, for a sweep of d, and report performance against d and d_int90
(the first d whose mean performance over seeds is strictly greater than 0.90 x a baseline).

- `projections`: dense, sparse and Fastfood P: R^d -> R^D (`P @ theta_d`, differentiable);
- `subspace`: `SubspaceModel(module, d, projection)` wraps any `torch.nn.Module`;
- `tasks`: a supervised `Task` (data + loss + per-example score) and the zoo's digits models;
- `sweep`: `intrinsic_dimension(...)` -> `workbench.analysis.results.Result`, and the d_int rule;
- `figures`: the performance-vs-d chart the app and the notebook draw.

This is a model + dataset tool, not an activations analysis: no module here exposes ANALYSIS.
The command line is `workbench landscape-dim` (old name `workbench intrinsic-dim`, kept as an alias). Submodules import torch; this file does not, so
that the analysis registry's package scan stays cheap.
"""
