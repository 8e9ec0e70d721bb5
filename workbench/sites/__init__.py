"""Sites and positions: canonical names of places in the forward pass and their patterns
(`names.py`), and which token positions of a left-padded batch to keep (`positions.py`)."""

from workbench.sites.names import expand_sites, is_pattern, layer_index, split_patterns

__all__ = ["expand_sites", "is_pattern", "layer_index", "split_patterns"]
