"""Opening a store for writing: what the directory holds decides new, resume or refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import StoreCorruptError, StoreError, StoreSpecMismatchError
from workbench.store import manifest as M

try:  # advisory lock against two writers on one store; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def existing_manifest(
    path: Path, spec: dict[str, Any], spec_hash: str, overwrite: bool
) -> dict[str, Any] | None:
    """The manifest to resume (or to overwrite), None for a new store; raises when refused.

    Refused: a path that is a file; a non-empty directory without a manifest (never written
    into nor deleted, even with overwrite); a store of another spec or an already complete one
    (unless overwrite); an unreadable manifest (unless overwrite).
    """
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} exists and is not a directory; a store is a directory")
    if not path.exists():
        return None
    try:
        manifest = M.read_manifest(path)
    except StoreCorruptError as e:
        if overwrite:
            return {"unreadable": str(e)}
        raise StoreCorruptError(f"{e}; pass overwrite=True to replace this store") from e
    if manifest is None:
        leftovers = sorted(
            p.name for p in path.iterdir() if p.name not in (M.LOCK_NAME, "manifest.json.tmp")
        )
        if leftovers:
            raise StoreError(
                f"{path} is not empty and is not an activation store (no {M.MANIFEST_NAME}; "
                f"holds {leftovers[:5]}); refusing to write into it or delete it. "
                "Choose an empty or new directory."
            )
        return None
    if overwrite:
        return manifest
    if manifest["spec_hash"] != spec_hash:
        raise StoreSpecMismatchError(
            f"the store at {path} was captured with a different spec; differing keys:\n"
            f"{M.spec_diff(manifest['spec'], spec)}\n"
            "Use another directory, or overwrite=True to replace it."
        )
    if manifest["complete"]:
        raise StoreError(
            f"the store at {path} is already complete for this spec; use overwrite=True to "
            "capture it again, or StoreWriter.existing_complete(path, spec) to skip it"
        )
    return manifest


class WriterLock:
    """An exclusive flock on ``<store>/.writer.lock``; the OS drops it when the process dies."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        self._file: Any = open(path / M.LOCK_NAME, "a+")  # noqa: SIM115 (held until release)
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._file.close()
            raise StoreError(
                f"another StoreWriter is writing the store at {path} (its lock file "
                f"{M.LOCK_NAME} is held); if that writer is in this process, finalize() or "
                "abort() it first"
            ) from e

    def release(self) -> None:
        self._file.close()  # closing the file releases the flock
