"""Activation statistics per site (norms, scale, variance concentration) from a store's streaming statistics or arrays."""
