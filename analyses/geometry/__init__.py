"""Representation geometry: intrinsic dimension (TwoNN, MLE, PCA), anisotropy, effective rank, sparsity, and their curves over layers and checkpoints."""
