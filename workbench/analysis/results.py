"""Results: what every analysis returns.

A `Result` holds a tidy frame (one row per (checkpoint, site, metric, ...) with the analysis's
settings as columns), the headline numbers for `--json`, and provenance. It saves as parquet +
JSON and loads back; `figures()` draws plotly figures from the frame.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import InputError

RESULT_SCHEMA_VERSION = 1
#: the keys of a Result's `result.json` (a batch cell's `result.json` has others: see
#: workbench.batch.storage, and `workbench batch report` for reading those)
RESULT_META_KEYS = ("analysis", "headline", "params", "provenance")


@dataclass
class Result:
    """An analysis result.

    Attributes:
        analysis: registered analysis name.
        frame: tidy frame; must have a `metric` and a `value` column.
        headline: JSON-ready headline numbers (what `--json` prints), e.g. {"dimension": 7.9}.
        params: the settings used.
        provenance: where the input came from (store path, spec, model, weights hash...).
    """

    analysis: str
    frame: pd.DataFrame
    headline: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = {"metric", "value"} - set(self.frame.columns)
        if missing:
            raise InputError(f"result frame of {self.analysis!r} lacks columns {sorted(missing)}")

    def to_frame(self) -> pd.DataFrame:
        """The tidy frame with the settings as columns (`param_<name>`)."""
        frame = self.frame.copy()
        for key, value in self.params.items():
            frame[f"param_{key}"] = (
                value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
            )
        frame["analysis"] = self.analysis
        return frame

    def to_json(self) -> dict[str, Any]:
        """Headline numbers plus the settings used (what `--json` prints)."""
        return {"analysis": self.analysis, **self.headline, "settings": self.params}

    def figures(self) -> list[Any]:
        """Plotly figures: one bar/line chart of `value` per metric over the frame's x column."""
        import plotly.express as px

        figures = []
        x = "site" if "site" in self.frame.columns else self.frame.columns[0]
        for metric, group in self.frame.groupby("metric", sort=False):
            fig = px.line(group, x=x, y="value", markers=True, title=f"{self.analysis}: {metric}")
            figures.append(fig)
        return figures

    def save(self, directory: str | Path) -> Path:
        """Write `result.parquet` + `result.json` into `directory` (JSON last, atomically: a
        directory without result.json is not a finished result)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # an older result here stops reading as finished before its table is overwritten
        (directory / "result.json").unlink(missing_ok=True)
        self.frame.to_parquet(directory / "result.parquet", index=False)
        meta = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "analysis": self.analysis,
            "headline": self.headline,
            "params": self.params,
            "provenance": self.provenance,
        }
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=2, default=str)
        os.replace(tmp, directory / "result.json")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Result:
        """Read the result `save` wrote into `directory`; a directory without a finished
        Result (no `result.json`, or a batch cell's) is an `InputError` saying what it holds."""
        directory = Path(directory)
        meta_path = directory / "result.json"
        if not meta_path.is_file():
            raise InputError(f"{str(directory)!r} holds no finished result (no result.json)")
        meta = json.loads(meta_path.read_text())
        missing = [key for key in RESULT_META_KEYS if key not in meta]
        if missing:
            kind = "a batch cell" if "cell" in meta else "something else"
            raise InputError(
                f"{str(directory)!r} holds {kind}, not a Result: its result.json lacks "
                f"{missing} (a Result has {list(RESULT_META_KEYS)}); read batch cells with "
                "`workbench batch report` or the results.parquet of their batch"
            )
        frame = pd.read_parquet(directory / "result.parquet")
        return cls(
            analysis=meta["analysis"],
            frame=frame,
            headline=meta["headline"],
            params=meta["params"],
            provenance=meta["provenance"],
        )


def list_results(root: str | Path, max_depth: int = 6) -> list[dict[str, Any]]:
    """Finished results (a Result's `result.json` beside its parquet) under `root`: path
    relative to `root`, analysis, and the headline numbers. Batch cells (whose `result.json` is
    not a Result's) and unreadable files are skipped."""
    root = Path(root)
    found = []
    for meta_path in sorted(root.glob("**/result.json")):
        relative = meta_path.parent.relative_to(root)
        if len(relative.parts) > max_depth or not (meta_path.parent / "result.parquet").is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or any(key not in meta for key in RESULT_META_KEYS):
            continue
        found.append(
            {
                "path": str(relative),
                "analysis": meta.get("analysis"),
                "headline": meta.get("headline", {}),
            }
        )
    return found
