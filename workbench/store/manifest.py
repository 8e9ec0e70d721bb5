"""The store's manifest: schema, spec identity, file layout and name rules.

A store is one directory::

    manifest.json                          schema, spec, provenance, sites, chunks, checksums
    sites/<site>/chunk_000012.npy          (rows, width) activations of one chunk
    rows/<field>/chunk_000012.npy          (rows,) int64 token_ids, example_index, position
    row_labels/<name>/chunk_000012.npy     (rows,) optional per-row labels
    example_labels/<name>/chunk_000012.npy (stop - start,) optional per-example labels
    stats/stats_000012.npz                 RunningStats state of every site after chunk 12

The manifest lists the committed chunks; any other file under those folders is debris of an
interrupted write and is removed when the capture resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from workbench.errors import InputError, StoreCorruptError, StoreError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".writer.lock"
ROW_FIELDS = ("token_ids", "example_index", "position")
# Every entry a store may create at its top level; overwrite deletes exactly these.
STORE_ENTRIES = ("sites", "rows", "row_labels", "example_labels", "stats", LOCK_NAME)
DATA_DIRS = ("sites", "rows", "row_labels", "example_labels", "stats")
DTYPES = ("float32", "float16", "bfloat16")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same text for equal specs."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"the capture spec must be JSON-serialisable: {e}") from e


def spec_hash(spec: dict[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of `spec`: a store's identity."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def json_text(manifest: dict[str, Any]) -> bytes:
    """The manifest as indented UTF-8 JSON (NaN refused: it is not JSON)."""
    try:
        return (json.dumps(manifest, indent=1, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InputError(f"the manifest (spec/provenance) is not JSON-serialisable: {e}") from e


def normalise_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` after a JSON round trip (tuples become lists), as the manifest will hold it."""
    if not isinstance(spec, dict):
        raise InputError(f"spec must be a dict, got {type(spec).__name__}")
    return json.loads(canonical_json(spec))


def spec_diff(stored: dict[str, Any], given: dict[str, Any], limit: int = 200) -> str:
    """One line per top-level key whose value differs: ``key: stored=... given=...``."""

    def short(value: Any) -> str:
        text = "<absent>" if value is _ABSENT else json.dumps(value, sort_keys=True)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    lines = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key, _ABSENT), given.get(key, _ABSENT)
        if a != b:
            lines.append(f"  {key}: stored={short(a)} given={short(b)}")
    return "\n".join(lines) or "  (no top-level difference; nested values differ in type)"


_ABSENT = object()


def check_name(name: str, what: str) -> str:
    """A site or label name usable as one directory name; dots are fine, paths are not."""
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} name must be a non-empty string, got {name!r}")
    if "/" in name or "\\" in name or ".." in name or name.startswith(".") or "\0" in name:
        raise InputError(
            f"{what} name {name!r} cannot be a directory name: it must not contain '/', '\\' "
            "or '..' nor start with '.'"
        )
    return name


def chunk_file(index: int) -> str:
    return f"chunk_{index:06d}.npy"


def site_file(site: str, index: int) -> str:
    return f"sites/{site}/{chunk_file(index)}"


def row_file(field: str, index: int) -> str:
    return f"rows/{field}/{chunk_file(index)}"


def row_label_file(name: str, index: int) -> str:
    return f"row_labels/{name}/{chunk_file(index)}"


def example_label_file(name: str, index: int) -> str:
    return f"example_labels/{name}/{chunk_file(index)}"


def stats_file(index: int) -> str:
    return f"stats/stats_{index:06d}.npz"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The parsed manifest of the store at `path`, or None if there is no manifest.

    Raises StoreCorruptError for unreadable JSON or an unknown schema version.
    """
    file = Path(path) / MANIFEST_NAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read {file}: {e}") from e
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreCorruptError(f"{file} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise StoreCorruptError(f"{file} does not hold a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreCorruptError(
            f"{file} has schema_version {version!r}; this workbench reads schema_version "
            f"{SCHEMA_VERSION} only"
        )
    for key in ("complete", "spec", "spec_hash", "sites", "chunks"):
        if key not in manifest:
            raise StoreCorruptError(f"{file} lacks the field {key!r}")
    return manifest


def committed_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Relative path -> {bytes, checksum} of every file the manifest commits (stats included)."""
    files: dict[str, dict[str, Any]] = {}
    for chunk in manifest["chunks"]:
        files.update(chunk["files"])
    stats = manifest.get("stats")
    if stats:
        files[stats["file"]] = {"bytes": stats["bytes"], "checksum": stats["checksum"]}
    return files
