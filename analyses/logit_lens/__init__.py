"""Per-layer views of one prompt: residual norms and the logit lens (the app's Model page)."""
