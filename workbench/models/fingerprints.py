"""Content fingerprints of weight files, cached by (path, size, mtime).

`hash_files(paths)` is sha256 over the name and bytes of each file, in sorted order: the
`weights_hash` recorded in every store, result and batch plan made from a checkpoint. Reading a
1B-parameter model's files takes seconds to minutes, and a batch plan fingerprints every
checkpoint of a series, so values are cached in a small sqlite database, `fingerprints.sqlite`
under `cache_dir()`, keyed by each file's name, resolved path, size, mtime (ns) and inode: a
file rewritten (new size or mtime) or replaced (new inode) is read again; a hit reads no byte of
the files. The cached value is exactly the uncached one.

The database is safe to share between processes (sqlite's file locks; write-ahead log, so
readers never wait for a writer), and each process keeps one connection per thread. Where the
cache folder cannot be made or written, or the database is unreadable, fingerprints are computed
without it (a debug log line, not an error). Entries are never pruned: each is about 200 bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "WORKBENCH_CACHE_DIR"
FINGERPRINT_DB = "fingerprints.sqlite"
# Bump when the key or the hashed bytes change, so that old entries are never read back.
_KEY_VERSION = "hash_files/1"
_local = threading.local()  # this thread's connections: {(pid, database path): connection}


def hash_files(paths: list[Path], *, cache: bool = True) -> str:
    """sha256 over the name and bytes of each of `paths`, in sorted order: a content hash of a
    checkpoint, `"sha256:<64 hex>"`. The name hashed is the path's own (a symlink's, not its
    target's); the bytes are the target's.

    With `cache` (the default) the value is looked up first (module docstring); on a miss the
    files are read and the value stored, but only when none of them changed while being read.
    Raises FileNotFoundError for a missing file, with or without the cache.
    """
    ordered = sorted(Path(p) for p in paths)
    if not cache:
        return _hash_uncached(ordered)
    key = _fingerprint_key(ordered)
    db = _connection()
    if db is None:
        return _hash_uncached(ordered)
    try:
        row = db.execute("SELECT value FROM fingerprints WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error as exc:
        _drop_connection(f"unreadable ({exc})")
        return _hash_uncached(ordered)
    if row is not None:
        return str(row[0])
    value = _hash_uncached(ordered)
    if _fingerprint_key(ordered) != key:  # a file changed while it was read: store nothing
        return value
    try:
        with db:
            db.execute(
                "INSERT OR REPLACE INTO fingerprints (key, value) VALUES (?, ?)", (key, value)
            )
    except sqlite3.Error as exc:
        _drop_connection(f"not written ({exc})")
    return value


def cache_dir() -> Path:
    """The workbench's cache folder: $WORKBENCH_CACHE_DIR, else $XDG_CACHE_HOME/workbench,
    else ~/.cache/workbench (the zoo's default root is its zoo/ folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "workbench"


def _hash_uncached(ordered: list[Path]) -> str:
    """The fingerprint read from the bytes (4 MiB blocks)."""
    digest = hashlib.sha256()
    for path in ordered:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _fingerprint_key(ordered: list[Path]) -> str:
    """The cache key of `ordered`: sha256 over (name, resolved path, size, mtime_ns, inode) of
    each file."""
    entries: list[list[object]] = [[_KEY_VERSION]]
    for path in ordered:
        target = path.resolve()
        stat = target.stat()
        entries.append([path.name, str(target), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _database() -> Path:
    return cache_dir() / FINGERPRINT_DB


def _connection() -> sqlite3.Connection | None:
    """This thread's connection to the database (created on first use), or None where the cache
    folder cannot be made or written. Kept open: closing a write-ahead-logged database
    checkpoints and syncs it, which costs more than the lookup."""
    path = _database()
    key = (os.getpid(), str(path))  # a forked child opens its own
    connections: dict[tuple[int, str], sqlite3.Connection] = _local.__dict__.setdefault(
        "connections", {}
    )
    if key in connections:
        return connections[key]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30.0)
    except (OSError, sqlite3.Error) as exc:
        log.debug("fingerprint cache %s unavailable (%s): hashing without it", path, exc)
        return None
    try:
        # write-ahead log: readers never wait for a writer; NORMAL sync cannot corrupt it (a
        # crash may lose the last entries, which are then hashed again)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS fingerprints (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
    except sqlite3.Error as exc:
        db.close()
        log.debug("fingerprint cache %s unavailable (%s): hashing without it", path, exc)
        return None
    connections[key] = db
    return db


def _drop_connection(why: str) -> None:
    """Close and forget this thread's connection after an error (the next call reopens)."""
    path = _database()
    log.debug("fingerprint cache %s %s: hashing without it", path, why)
    db = _local.__dict__.get("connections", {}).pop((os.getpid(), str(path)), None)
    if db is not None:
        db.close()
