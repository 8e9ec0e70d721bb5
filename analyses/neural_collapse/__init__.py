"""Neural collapse NC1-NC4 (Papyan, Han & Donoho 2020), streamed, and over a checkpoint series."""
