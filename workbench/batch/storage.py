"""Where a batch writes: results through fsspec (a local folder, or s3://, gs://, ... when workers
share no disk), activation stores on a disk the analysing process can memory-map.

Results: `cells/<key>/result.parquet`, then `cells/<key>/result.json` (a cell is finished exactly
when its JSON exists; on a local disk it is renamed into place), or `cells/<key>/error.json`.
Stores: `STORES/<key>/`. When STORES is a remote URL, a capture is written to a local cache and
uploaded once complete; a worker that needs it downloads it into its own cache first.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

CACHE_ENV = "WORKBENCH_BATCH_CACHE"


class ResultStore:
    """A batch's result folder, local or remote (any fsspec URL)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = _is_local(self.fs)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_json(self, *parts: str) -> dict[str, Any]:
        with self.fs.open(self.path(*parts), "r") as fh:
            return json.load(fh)

    def write_json(self, parts: tuple[str, ...], data: Any) -> None:
        self.write_bytes(parts, json.dumps(data, indent=2, default=_plain).encode())

    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write whole, so a reader never sees half a file: rename into place on a local disk;
        on an object store a PUT is already all or nothing."""
        target = self.path(*parts)
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        if not self.local:
            with self.fs.open(target, "wb") as fh:
                fh.write(data)
            return
        tmp = f"{target}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def read_frame(self, *parts: str) -> pd.DataFrame:
        with self.fs.open(self.path(*parts), "rb") as fh:
            return pd.read_parquet(io.BytesIO(fh.read()))

    def write_frame(self, parts: tuple[str, ...], frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        self.write_bytes(parts, buffer.getvalue())

    def remove(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.rm(self.path(*parts))


class StoreLocation:
    """Activation stores by key: local folders, or a remote URL mirrored through a local cache."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.remote = not _is_local(self.fs)

    def local_path(self, key: str) -> Path:
        """Where this process reads and writes store `key`."""
        if not self.remote:
            return Path(self.root) / key
        cache = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache/workbench/batch-stores"))
        return cache / key

    def is_complete(self, key: str) -> bool:
        """True when store `key` is complete where every worker can reach it."""
        manifest = f"{self.root.rstrip('/')}/{key}/manifest.json"
        if not self.fs.exists(manifest):
            return False
        with self.fs.open(manifest, "r") as fh:
            return bool(json.load(fh).get("complete"))

    def publish(self, key: str) -> None:
        """Upload a complete local store to the remote root (no-op for local stores). The
        manifest goes last, so a half-uploaded store never reads as complete."""
        if not self.remote:
            return
        local = self.local_path(key)
        target = f"{self.root.rstrip('/')}/{key}"
        files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != "manifest.json")
        for path in [*files, local / "manifest.json"]:
            destination = f"{target}/{path.relative_to(local).as_posix()}"
            self.fs.makedirs(destination.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), destination)

    def fetch(self, key: str) -> Path:
        """A local, complete copy of store `key` (downloaded into the cache when remote)."""
        local = self.local_path(key)
        if not self.remote or _manifest_complete(local):
            return local
        self.fs.get(f"{self.root.rstrip('/')}/{key}", str(local), recursive=True)
        return local


def _manifest_complete(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "manifest.json").read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
