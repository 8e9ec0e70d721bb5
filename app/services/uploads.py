"""Import files a user uploads (activations, steering vectors, SAEs) into the runs directory.

This module holds the limits, destinations and formats of every kind, the helpers all kinds
share (`upload_name`, `check_size`, the `_`-prefixed suffix/name/staging/provenance helpers that
`workbench_app.services.upload_sae` imports too, `Imported`), and the activation and steering-vector
importers (`parse_activations`, `parse_vector`, `import_activations`, `import_vector`). SAEs
(zip reading, config and weight checks, `import_sae`) are in `workbench_app.services.upload_sae`, which
imports from here; this module never imports it (no cycle), so import `import_sae` and
`read_zip` from there.

Where each kind lands, so that the pages that read it find it:

    RUNS/stores/uploads/NAME/                      an ActivationStore (Explore, Geometry, Home)
    RUNS/vectors/uploads/NAME.safetensors (+.json) a steering vector (the Steering page's list)
    RUNS/sae/uploads/NAME/                         an SAE directory (`workbench sae features
                                                   --sae ...`, `steer extract --from-sae ...`)

Safety: the size is checked against the kind's limit before any parsing; nothing is unpickled
(`.npy` through `np.load(allow_pickle=False)`, safetensors, JSON, tables through
`workbench.analysis.sources.load_array`); a zip's member names are checked (no paths out of it) and its
declared unpacked size is held to the limit (zip bombs; `zipfile` reads no member past its
declared size), never extracted by name. Names are sanitised to `[A-Za-z0-9._-]` without leading dots or `..`, and an existing name
is refused, never overwritten. Everything is written into a hidden `.partial-*` folder beside its
destination and renamed into place at the end; a failure removes the folder. A store is moved
while still incomplete and only marked complete in its final place, so a failed upload never
lists as a complete store anywhere.

Layering: the core never imports `analyses`, so writing a vector and loading an SAE are the
caller's: the app passes `analyses.steering.SteeringVector`'s save (here) and
`analyses.sae.load_sae` (to `workbench_app.services.upload_sae.import_sae`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from workbench.analysis.export import safe_name
from workbench.errors import InputError, UnknownSiteError, closest
from workbench_app.services.runsdir import runs_root

MiB = 1 << 20
# Limits on what one upload may hold, checked before parsing. Every kind's live here, beside
# MAX_UPLOAD_MB derived from them; `workbench_app.services.upload_sae` reads the SAE ones at call time.
# Activations: 512 MiB is ~1.3M rows of 100 float32 dims or ~175k rows of 768; while parsing,
# the app holds 2-3x the file in RAM for .npy/.safetensors and about 6x for tables (peaks
# measured on float32 files of 128-194 MiB).
ACTIVATIONS_LIMIT = 512 * MiB
# A steering vector is one (d,) row: 16 MiB is d = 4M float32, far above any model width.
VECTOR_LIMIT = 16 * MiB
# An SAE's files together (or a zip's members, uncompressed): a 16k-latent SAE on a 2304-wide
# model (Gemma Scope) is ~300 MB of float32.
SAE_LIMIT = 512 * MiB
SAE_CONFIG_LIMIT = 1 * MiB  # its JSON config alone
ZIP_MAX_MEMBERS = 16
# The web server's per-file cap (streamlit `--server.maxUploadSize`, in MiB): our largest limit.
MAX_UPLOAD_MB = max(ACTIVATIONS_LIMIT, VECTOR_LIMIT, SAE_LIMIT) // MiB

STORES_DIR = "stores/uploads"
VECTORS_DIR = "vectors/uploads"
SAES_DIR = "sae/uploads"
ACTIVATION_FORMATS = (".npy", ".safetensors", ".csv", ".parquet")
VECTOR_FORMATS = (".npy", ".safetensors")
SAE_FORMATS = (".zip", ".json", ".safetensors")
DEFAULT_SITE = "acts"  # the site of a single-matrix upload (.npy or a table)
CHUNK_BYTES = 64 * MiB  # rows per store chunk: about this many bytes
STALE_SECONDS = 24 * 3600  # `.partial-*` folders older than this are debris of a killed upload
PARTIAL = ".partial-"

SaveVector = Callable[[np.ndarray, str, dict[str, Any], Path], Any]


@dataclass(frozen=True)
class Imported:
    """Where an upload went: `path` (absolute), `relative` (to the runs dir, as the app's URL
    parameters hold it) and facts about it (sites, rows, width, format)."""

    kind: str  # "activations", "vector" or "sae"
    name: str
    path: Path
    relative: str
    details: dict[str, Any] = field(default_factory=dict)


# -- names, limits, staging -------------------------------------------------------------------


def upload_name(name: str) -> str:
    """The name an upload is stored under: the last part of `name` (a browser may send a
    client's path, `C:\\x\\y.npy`) as `workbench.analysis.export.safe_name` makes it (one file
    name: `[A-Za-z0-9._-]`, no `..`, no leading dot, at most 100 characters); InputError when
    nothing usable is left."""
    return safe_name(re.split(r"[\\/]", str(name))[-1], default=None)


def check_size(filename: str, size: int, limit: int, what: str) -> None:
    """InputError naming the file, its size and the limit if `size` exceeds `limit` bytes."""
    if size > limit:
        raise InputError(
            f"{filename!r} is {size / MiB:.1f} MiB; {what} uploads are limited to "
            f"{limit / MiB:g} MiB"
        )


def _suffix(filename: str, valid: Sequence[str], what: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix not in valid:
        raise InputError(
            f"{filename!r}: {what} cannot be read from a {suffix or 'suffix-less'!r} file; "
            f"valid: {', '.join(valid)}"
        )
    return suffix


def _stem(filename: str) -> str:
    return Path(re.split(r"[\\/]", filename)[-1]).stem


def _root(runs: str | os.PathLike | None) -> Path:
    return runs_root() if runs is None else Path(runs).resolve()


def _refuse_existing(target: Path, relative: str) -> None:
    if target.exists() or target.is_symlink():
        raise InputError(
            f"{relative!r} already exists in the runs directory; choose another name "
            "(uploads never overwrite)"
        )


@contextlib.contextmanager
def _staging(parent: Path, name: str) -> Iterator[Path]:
    """A fresh hidden folder `parent/.partial-NAME-xxxx`, removed on exit (its content is moved
    out before on success). Old ones left by killed uploads are swept first."""
    parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in parent.glob(f"{PARTIAL}*"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old)
    folder = parent / f"{PARTIAL}{name}-{secrets.token_hex(4)}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _provenance(filename: str, data: bytes) -> dict[str, Any]:
    return {
        "uploaded_file": filename,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _numeric(array: np.ndarray, what: str) -> np.ndarray:
    """`array` as float16/float32 (what the store keeps; float64 and ints become float32);
    InputError for object, text, bool, complex or other dtypes, or values float32 cannot hold."""
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what}: expected real numbers, got dtype {array.dtype}")
    if array.dtype in (np.float16, np.float32):
        return array
    with np.errstate(over="ignore"):
        out = array.astype(np.float32)
    overflow = np.isfinite(array) & ~np.isfinite(out)
    if overflow.any():
        where = tuple(int(i) for i in np.argwhere(overflow)[0])
        raise InputError(f"{what}: value {array[where]} at index {where} overflows float32")
    return out


def _check_finite(array: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{what}: non-finite value {array[where]} at index {where}")


# -- parsing ----------------------------------------------------------------------------------


def _natural(name: str) -> list[Any]:
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)
    ]


def _load_npy(data: bytes, filename: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refused
        raise InputError(
            f"{filename!r} is not a plain numeric .npy ({exc}); pickled (object) arrays are "
            "never loaded"
        ) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{filename!r} is not a readable .npy file: {exc}") from exc


def _load_safetensors(data: bytes, filename: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except Exception as exc:  # SafetensorError, bf16 (numpy has none), bad header
        raise InputError(
            f"{filename!r} is not a safetensors file numpy can read (float16/32/64 or ints): {exc}"
        ) from exc
    if not tensors:
        raise InputError(f"{filename!r} holds no tensors")
    return tensors


def _table_columns(path: Path) -> list[str]:
    """The column names `load_array` reads from a table, in its order (no data read)."""
    import pandas as pd

    if path.suffix == ".csv":
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    index = {
        c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)
    }
    return [n for n in schema.names if n not in index]


def _read_table(
    data: bytes, filename: str, suffix: str, folder: Path, labels: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(acts (n, d) float64, labels (n,) or None) of a csv/parquet upload, read through
    `workbench.analysis.sources.load_array` (numeric columns only, in their order)."""
    from workbench.analysis.sources import load_array

    raw = folder / f"upload{suffix}"
    raw.write_bytes(data)
    try:
        matrix = load_array(raw)
        columns = _table_columns(raw) if labels is not None else []
    except InputError as exc:
        raise InputError(str(exc).replace(repr(str(raw)), repr(filename))) from exc
    except Exception as exc:  # pandas / pyarrow parse errors
        raise InputError(f"{filename!r} is not a readable {suffix} table: {exc}") from exc
    finally:
        raw.unlink(missing_ok=True)
    if labels is None:
        return matrix, None
    if labels not in columns:
        raise InputError(
            f"{filename!r} has no column {labels!r}; valid: {', '.join(columns) or 'none'}"
        )
    at = columns.index(labels)
    return np.delete(matrix, at, axis=1), matrix[:, at]


def _label_values(values: np.ndarray, filename: str, name: str) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind not in "iuf":
        raise InputError(f"{filename!r}: labels {name!r} must be numbers, got dtype {values.dtype}")
    _check_finite(values, f"{filename!r}: labels {name!r}")
    if values.dtype.kind == "f" and np.all(values == np.round(values)):
        return values.astype(np.int64)  # class ids written as floats by the table reader
    return values


def parse_activations(
    data: bytes, filename: str, folder: Path, site: str | None = None, labels: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(site -> (n, d) float array, row label name -> (n,)) of an upload. `.npy` and tables are
    one site (`site`, default "acts"); a `.safetensors` has one site per 2-D tensor, and
    `labels` names a 1-D tensor. For a table `labels` names a column. `folder`: scratch space.
    """
    suffix = _suffix(filename, ACTIVATION_FORMATS, "activations")
    label_array: np.ndarray | None = None
    if suffix == ".safetensors":
        if site is not None:
            raise InputError(f"{filename!r}: a .safetensors upload names its sites by its tensors")
        tensors = _load_safetensors(data, filename)
        if labels is not None:
            if labels not in tensors:
                raise InputError(
                    f"{filename!r} has no tensor {labels!r} for labels; valid: "
                    f"{', '.join(sorted(tensors))}"
                )
            label_array = tensors.pop(labels)
        # in depth order (blocks.2 before blocks.10), not the file's byte order
        acts = {k: tensors[k] for k in sorted(tensors, key=_natural)}
    elif suffix == ".npy":
        if labels is not None:
            raise InputError(
                f"{filename!r}: a .npy holds one matrix; labels come from a table column or a "
                "1-D tensor of a .safetensors upload"
            )
        acts = {site or DEFAULT_SITE: _load_npy(data, filename)}
    else:
        matrix, label_array = _read_table(data, filename, suffix, folder, labels)
        acts = {site or DEFAULT_SITE: matrix}
    if not acts:
        raise InputError(f"{filename!r} holds only the labels {labels!r}, no activations")
    n_rows = None
    for name, array in list(acts.items()):
        what = f"{filename!r}, site {name!r}"
        if array.ndim != 2:
            raise InputError(
                f"{what}: expected a 2-D (rows, width) matrix, got shape {tuple(array.shape)}"
            )
        if 0 in array.shape:
            raise InputError(f"{what}: empty matrix of shape {tuple(array.shape)}")
        array = _numeric(array, what)
        _check_finite(array, what)
        if n_rows is not None and array.shape[0] != n_rows:
            raise InputError(
                f"{filename!r}: every site must have the same number of rows; {name!r} has "
                f"{array.shape[0]}, others {n_rows}"
            )
        n_rows = array.shape[0]
        acts[name] = array
    row_labels = {}
    if label_array is not None:
        values = _label_values(label_array, filename, labels or "")
        if values.shape != (n_rows,):
            raise InputError(
                f"{filename!r}: labels {labels!r} have shape {tuple(label_array.shape)}, "
                f"expected ({n_rows},): one per row"
            )
        row_labels[labels or "labels"] = values
    return acts, row_labels


def parse_vector(data: bytes, filename: str) -> np.ndarray:
    """The (d,) float vector of a `.npy` or one-tensor `.safetensors` upload."""
    suffix = _suffix(filename, VECTOR_FORMATS, "a steering vector")
    if suffix == ".npy":
        vector = _load_npy(data, filename)
    else:
        tensors = _load_safetensors(data, filename)
        if len(tensors) != 1 and "vector" not in tensors:
            raise InputError(
                f"{filename!r} holds tensors {sorted(tensors)}; a vector file holds one tensor "
                "(or one named 'vector')"
            )
        vector = tensors.get("vector", next(iter(tensors.values())))
    if vector.ndim != 1 or vector.shape[0] == 0:
        raise InputError(
            f"{filename!r}: a steering vector is 1-D (width,), got shape {tuple(vector.shape)}"
        )
    vector = _numeric(vector, filename)
    _check_finite(vector, repr(filename))
    if not np.any(vector):
        raise InputError(f"{filename!r} is the zero vector: it steers nowhere")
    return vector.astype(np.float32)


# -- importing --------------------------------------------------------------------------------


def import_activations(
    data: bytes,
    filename: str,
    *,
    runs: str | os.PathLike | None = None,
    name: str | None = None,
    site: str | None = None,
    labels: str | None = None,
) -> Imported:
    """Write an uploaded activation matrix as an ActivationStore at RUNS/stores/uploads/NAME.

    data: the file's bytes (<= ACTIVATIONS_LIMIT); filename: its name (the suffix picks the
    reader, see `parse_activations`); name: the store's name (default: the file's stem). Each
    row is its own example (token id -1, position 0); `labels` becomes a row label.
    """
    from workbench.store import StoreWriter

    check_size(filename, len(data), ACTIVATIONS_LIMIT, "activation")
    _suffix(filename, ACTIVATION_FORMATS, "activations")
    name = upload_name(name or _stem(filename))
    root = _root(runs)
    relative = f"{STORES_DIR}/{name}"
    target = root / relative
    _refuse_existing(target, relative)
    with _staging(target.parent, name) as folder:
        acts, row_labels = parse_activations(data, filename, folder, site, labels)
        provenance = _provenance(filename, data)
        spec = {
            "source": "upload",
            "dataset": filename,
            "sites": list(acts),
            "upload_sha256": provenance["sha256"],
        }
        n_rows = next(iter(acts.values())).shape[0]
        row_bytes = sum(a.shape[1] * 4 for a in acts.values())
        step = max(1, CHUNK_BYTES // row_bytes)
        writer = StoreWriter(folder / "store", spec, provenance=provenance)
        with writer:
            for start in range(0, n_rows, step):
                rows = slice(start, min(start + step, n_rows))
                writer.append(
                    {s: a[rows] for s, a in acts.items()},
                    token_ids=None,
                    example_index=np.arange(rows.start, rows.stop),
                    position=None,
                    row_labels={k: v[rows] for k, v in row_labels.items()} or None,
                )
        # Moved while incomplete, marked complete only in place: nothing complete lies anywhere
        # else, even for a moment.
        _refuse_existing(target, relative)
        os.rename(folder / "store", target)
        try:
            store = StoreWriter(target, spec).finalize()
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    details = {
        "sites": store.sites,
        "n_rows": store.n_rows,
        "widths": {s: store.site_info(s)["width"] for s in store.sites},
        "labels": list(row_labels),
    }
    return Imported("activations", name, target, relative, details)


def import_vector(
    data: bytes,
    filename: str,
    site: str,
    *,
    save: SaveVector,
    runs: str | os.PathLike | None = None,
    name: str | None = None,
    sites: Mapping[str, int] | None = None,
) -> Imported:
    """Save an uploaded (d,) steering vector for `site` at RUNS/vectors/uploads/NAME.safetensors.

    save(vector (d,) float32, site, provenance, path) writes `path` and its `.json` sidecar
    (the app passes `SteeringVector(...).save`: the format the Steering page reads). sites: the
    model's site -> width, if a model is known: the site must be one of them and the width
    must match; otherwise the vector need only be 1-D, finite and non-zero.
    """
    check_size(filename, len(data), VECTOR_LIMIT, "steering-vector")
    _suffix(filename, VECTOR_FORMATS, "a steering vector")
    if not isinstance(site, str) or not site.strip():
        raise InputError("a steering vector needs the site it is for, e.g. blocks.2.hook_resid_pre")
    site = site.strip()
    name = upload_name(name or _stem(filename))
    root = _root(runs)
    relative = f"{VECTORS_DIR}/{name}.safetensors"
    target = root / relative
    meta = target.with_suffix(".json")
    _refuse_existing(target, relative)
    _refuse_existing(meta, f"{VECTORS_DIR}/{name}.json")
    vector = parse_vector(data, filename)
    if sites is not None:
        if site not in sites:
            raise UnknownSiteError(
                f"the model has no site {site!r}; closest: {', '.join(closest(site, sites))}"
            )
        if sites[site] != vector.shape[0]:
            raise InputError(
                f"{filename!r} has width {vector.shape[0]}, but site {site!r} has width "
                f"{sites[site]}"
            )
    with _staging(target.parent, name) as folder:
        written = folder / f"{name}.safetensors"
        save(vector, site, _provenance(filename, data), written)
        # os.link refuses an existing target: no overwrite even in a race; the JSON goes last,
        # since a vector without its JSON is not a finished vector.
        try:
            os.link(written, target)
            try:
                os.link(written.with_suffix(".json"), meta)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        except FileExistsError as exc:
            raise InputError(f"{relative!r} appeared meanwhile; choose another name") from exc
    return Imported("vector", name, target, relative, {"site": site, "width": int(vector.shape[0])})
