"""The analysis framework: the registry of analyses found through entry points
(`registry.py`), their inputs (`sources.py`: a store site or arrays), their outputs
(`results.py`: tidy frame, figures, parquet + JSON) and exports (`export.py`), what families
declare for others (`plugins.py`: headlines, report kinds, job kinds), and the one checkpoint
iterator (`checkpoints.py`)."""
