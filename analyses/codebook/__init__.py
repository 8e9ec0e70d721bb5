"""Codebook features (Tamkin, Taufeeque, Goodman 2023): top-k codebook bottlenecks spliced into
any model through `workbench.hooks.intervene`, finetuned, read (statistics, search, purity) and forced
to steer. Modules: `layer` (CodebookLayer, force, insert_codebooks), `model` (Codebooks: sites,
save/load), `train` (finetune, task metrics with/without), `analysis`, `steer`."""
