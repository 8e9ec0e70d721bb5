"""A Hugging Face hub cache fabricated in the real layout, holding tiny GPT-NeoX checkpoints as a
repository's `step<N>` revisions (the way Pythia publishes them), and a network-free setup that
points huggingface_hub at it. Shared by the hub tests of models/ and batch/.

    <cache>/models--org--tiny/blobs/<sha256>                 file contents
    <cache>/models--org--tiny/refs/step16                    the commit hash of revision step16
    <cache>/models--org--tiny/snapshots/<commit>/config.json -> ../../blobs/<sha256>
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.conftest import WORDS
from workbench.zoo.hf_folder import gpt_neox_model, save_hf_folder, word_tokenizer

TINY = (
    "org/tiny"  # step0, step16, step32, step48; main = step48 (as Pythia's main is its last step)
)
PLAIN = "org/plain"  # main only: a single model, no series
STEPS = (0, 16, 32, 48)


def repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def commit_of(repo_id: str, seed: int) -> str:
    """A fixed 40-hex commit hash per (repository, revision seed)."""
    return hashlib.sha1(f"{repo_id}:{seed}".encode()).hexdigest()


def add_revision(cache: Path, repo_id: str, refs: list[str], seed: int) -> Path:
    """Write one revision of `repo_id`: a tiny GPT-NeoX (2 layers, d_model 32, weights from
    `seed`) saved by transformers, its files moved into `blobs/<sha256>` and linked from
    `snapshots/<commit>/` (relative links, as huggingface_hub writes them); each of `refs`
    names the commit. Returns the snapshot folder."""
    repo = repo_folder(cache, repo_id)
    commit = commit_of(repo_id, seed)
    snapshot = repo / "snapshots" / commit
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = word_tokenizer(WORDS)
        model = gpt_neox_model(
            len(tokenizer), n_layers=2, d_model=32, n_heads=4, n_ctx=64, seed=seed
        )
        save_hf_folder(model, tokenizer, scratch)
        for file in sorted(Path(scratch).iterdir()):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            blob = repo / "blobs" / digest
            blob.parent.mkdir(parents=True, exist_ok=True)
            if not blob.exists():
                shutil.move(str(file), blob)
            link = snapshot / file.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # no newline, like huggingface_hub
    return snapshot


def build_cache(folder: Path) -> None:
    """The shared cache: `org/tiny` with four step revisions, `org/plain` with main only."""
    cache = folder / "hub"
    for step in STEPS:
        add_revision(cache, TINY, [f"step{step}"] + (["main"] if step == STEPS[-1] else []), step)
    add_revision(cache, PLAIN, ["main"], 7)


def use_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> Path:
    """Point huggingface_hub (environment and its already-read constants) at `cache`, offline,
    with every socket connection refused: nothing may reach the network."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(*_args, **_kwargs):
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return cache


def copy_cache(cache: Path, target: Path) -> Path:
    """A private copy of `cache` (links kept as links) that a test may damage."""
    shutil.copytree(cache, target, symlinks=True)
    return target


@pytest.fixture
def hub_cache(built_once, monkeypatch) -> Path:
    """The shared fabricated cache (read-only by convention), huggingface_hub pointed at it."""
    return use_cache(monkeypatch, built_once("hf-hub-cache", build_cache) / "hub")


@pytest.fixture
def own_cache(built_once, monkeypatch, tmp_path) -> Path:
    """A private copy of the fabricated cache, huggingface_hub pointed at it (tests damage it)."""
    shared = built_once("hf-hub-cache", build_cache) / "hub"
    return use_cache(monkeypatch, copy_cache(shared, tmp_path / "hub"))
