"""Analysis families, one package each, shaped the same: compute modules named by concept (array
API), `analyses.py` (the registered analyses), `cli.py` (its `workbench` verbs), `demo.py` (its
step of `workbench demo`) and `report.py` (what the app's overview and jobs read), where the
family has them. Each declares itself in `pyproject.toml`'s entry points; nothing here imports
the app."""
