"""Linear probes and their controls, shaped like an analysis family: `linear.py` (the registered `probe`), `controls.py`, `directions.py`, `sweep.py` (over checkpoints), `demo.py`, `report.py`."""
