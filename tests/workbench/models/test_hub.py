"""Hub revisions and hub series, on a Hugging Face cache fabricated in the real layout (see
`hub_cache`) with the network blocked: `ORG/NAME@REV` and `@N`, a repository's step<N>
revisions as a checkpoint series, every bad input, the CLI, and (mocked) downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.workbench.models.hub_cache import (
    PLAIN,
    STEPS,
    TINY,
    add_revision,
    commit_of,
    hub_cache,
    own_cache,
    repo_folder,
)
from workbench.analysis.checkpoints import as_series, capture_stores, find_series, iter_checkpoints
from workbench.cli.main import main
from workbench.errors import InputError, UnknownModelError
from workbench.models import HubSeries, load_model
from workbench.store import ActivationStore

__all__ = ["hub_cache", "own_cache"]  # fixtures used below

EMBED = "gpt_neox.embed_in.weight"


def embedding(handle) -> torch.Tensor:
    """The token embedding of a booted GPT-NeoX (TransformerBridge parameter name)."""
    return dict(handle.model.named_parameters())["gpt_neox.embed_in._original_component.weight"]


def snapshot(cache: Path, repo_id: str, seed: int) -> Path:
    return repo_folder(cache, repo_id) / "snapshots" / commit_of(repo_id, seed)


def saved_embedding(cache: Path, step: int) -> torch.Tensor:
    return load_file(str(snapshot(cache, TINY, step) / "model.safetensors"))[EMBED]


def test_revision_loads_that_commits_weights(hub_cache):
    handle = load_model(f"{TINY}@step16", device="cpu")
    assert torch.equal(embedding(handle), saved_embedding(hub_cache, 16))
    assert not torch.equal(embedding(handle), saved_embedding(hub_cache, 32))
    assert handle.info.checkpoint_step == 16 and handle.info.name == f"{TINY}@16"
    assert handle.info.location == str(snapshot(hub_cache, TINY, 16))
    assert handle.info.source == f"{TINY}@step16"


def test_step_shorthand_commit_hash_and_main(hub_cache):
    by_number = load_model(f"{TINY}@32", device="cpu")
    assert torch.equal(embedding(by_number), saved_embedding(hub_cache, 32))
    assert by_number.info.checkpoint_step == 32 and by_number.info.name == f"{TINY}@32"
    commit = commit_of(TINY, 16)
    for revision in (commit, commit[:10]):  # a commit hash, and a unique prefix of it
        handle = load_model(f"{TINY}@{revision}", device="cpu")
        assert torch.equal(embedding(handle), saved_embedding(hub_cache, 16))
        assert handle.info.checkpoint_step == 16  # the step<N> ref that names this commit
    plain = load_model(TINY, device="cpu")  # no revision: main, which is step48's commit
    assert torch.equal(embedding(plain), saved_embedding(hub_cache, 48))
    assert plain.info.name == TINY and plain.info.checkpoint_step is None


def test_a_hub_repository_is_a_series(hub_cache):
    series = find_series(TINY)
    assert isinstance(series, HubSeries) and series.steps == list(STEPS)
    assert series.location(16) == snapshot(hub_cache, TINY, 16)
    assert series.resolve_step("last") == 48 and series.resolve_step("16") == 16
    assert find_series(PLAIN) is None  # a single model: main only
    assert find_series("org/absent") is None
    seen = []
    for step, handle in iter_checkpoints(TINY, [0, "last"], device="cpu"):
        seen.append((step, handle.info.checkpoint_step, handle.info.name))
        assert torch.equal(embedding(handle), saved_embedding(hub_cache, step))
        del handle
    assert seen == [(0, 0, f"{TINY}@0"), (48, 48, f"{TINY}@48")]


def test_captured_hub_series_is_one_series_in_the_app(hub_cache, tmp_path):
    from workbench_app.services.runsdir import checkpoint_series, stores_by_path

    out = tmp_path / "runs" / "tiny-series"
    stores = capture_stores(
        TINY,
        sites="blocks.1.hook_resid_post",
        examples=["the cat sat on the mat", "a dog ran"],
        out=out,
        steps=["first", 16, "last"],
        device="cpu",
    )
    assert list(stores) == [0, 16, 48]
    assert [s.spec["model"] for s in stores.values()] == [f"{TINY}@{s}" for s in (0, 16, 48)]
    assert [s.spec["checkpoint_step"] for s in stores.values()] == [0, 16, 48]
    series = checkpoint_series(stores_by_path(tmp_path / "runs"))
    assert series == {"tiny-series": [(s, f"tiny-series/step{s}") for s in (0, 16, 48)]}


def test_revision_not_cached_names_the_cached_ones(hub_cache):
    for revision in ("step99", "v2.0"):
        with pytest.raises(UnknownModelError) as info:
            load_model(f"{TINY}@{revision}", device="cpu")
        message = str(info.value)
        assert repr(revision) in message and "--allow-download" in message
        assert "main, step0, step16, step32, step48" in message
    with pytest.raises(UnknownModelError, match="neither revision step7 nor a ref '7'"):
        load_model(f"{TINY}@7", device="cpu")
    with pytest.raises(UnknownModelError, match="org/absent.*--allow-download"):
        load_model("org/absent@step16", device="cpu")
    with pytest.raises(InputError, match="no revision"):
        load_model(f"{TINY}@", device="cpu")


def test_a_repository_without_step_revisions_is_not_a_series(hub_cache):
    with pytest.raises(InputError, match="no step<N> revisions.*its revisions: main"):
        as_series(PLAIN)
    with pytest.raises(InputError, match="no checkpoint at step 5 .*0, 16, 32, 48"):
        HubSeries(TINY).location(5)
    with pytest.raises(UnknownModelError, match="not in the Hugging Face cache"):
        HubSeries("org/absent")


def test_half_download_is_refused_naming_revision_and_file(own_cache):
    step16 = snapshot(own_cache, TINY, 16)
    (step16 / "model.safetensors").unlink()  # the weights never arrived
    blobs = repo_folder(own_cache, TINY) / "blobs"
    (blobs / "0123abcd.incomplete").write_bytes(b"partial")
    for spec in (f"{TINY}@step16", f"{TINY}@16"):
        with pytest.raises(InputError) as info:
            load_model(spec, device="cpu")
        message = str(info.value)
        assert "'step16'" in message and "model.safetensors" in message
        assert (
            "unfinished download" in message and "hf download org/tiny --revision step16" in message
        )
    with pytest.raises(InputError, match="'step16'.*model.safetensors"):
        HubSeries(TINY).location(16)
    (snapshot(own_cache, TINY, 32) / "config.json").unlink()
    with pytest.raises(InputError, match="'step32'.*missing config.json"):
        load_model(f"{TINY}@step32", device="cpu")
    assert load_model(f"{TINY}@step0", device="cpu").info.checkpoint_step == 0  # others load


def test_dangling_link_into_blobs_is_refused(own_cache):
    weights = snapshot(own_cache, TINY, 16) / "model.safetensors"
    os.unlink(weights.resolve())  # the blob is gone, the link stays
    with pytest.raises(InputError) as info:
        load_model(f"{TINY}@step16", device="cpu")
    assert "'step16'" in str(info.value) and "model.safetensors" in str(info.value)
    # huggingface_hub will not scan the damaged entry, so its series cannot be listed ...
    with pytest.raises(InputError, match="damaged.*Blob missing"):
        as_series(TINY)
    # ... but an intact revision of it still loads
    handle = load_model(f"{TINY}@0", device="cpu")
    assert torch.equal(embedding(handle), saved_embedding(own_cache, 0))


def test_cli_capture_of_a_hub_revision_offline(hub_cache, tmp_path, capsys):
    out = tmp_path / "store"
    code = main(
        ["capture", "--model", f"{TINY}@step16", "--sites", "blocks.0.hook_resid_post",
         "--text", "the cat sat", "--out", str(out), "--device", "cpu", "--no-progress"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    spec = ActivationStore(out).spec
    assert spec["model"] == f"{TINY}@16" and spec["checkpoint_step"] == 16
    code = main(["capture", "--model", f"{TINY}@step99", "--sites", "blocks.0.hook_resid_post",
                 "--text", "a", "--out", str(tmp_path / "x"), "--device", "cpu"])  # fmt: skip
    assert code != 0 and "step99" in capsys.readouterr().err


class FakeHub:
    """`HfApi.list_repo_refs` / `list_repo_files` and `snapshot_download` without a network:
    the Hub has org/tiny's cached steps plus step64; a download writes the revision into the
    cache the way huggingface_hub does (blobs, snapshot links, a ref)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.downloads: list[dict] = []

    def list_repo_refs(self, repo_id, **_kwargs):
        from huggingface_hub.hf_api import GitRefInfo, GitRefs

        names = ["main", "step64", "step16", "step0", "step48", "step32"]  # not in step order
        branches = [
            GitRefInfo(name=n, ref=f"refs/heads/{n}", target_commit="0" * 40) for n in names
        ]
        return GitRefs(branches=branches, converts=[], tags=[], pull_requests=None)

    def list_repo_files(self, repo_id, revision=None, **_kwargs):
        return ["config.json", "model.safetensors", "pytorch_model.bin"]

    def snapshot_download(self, repo_id, revision=None, cache_dir=None, **kwargs):
        self.downloads.append({"revision": revision, **kwargs})
        step = int(revision.removeprefix("step"))
        folder = snapshot(self.cache, repo_id, step)
        if not folder.exists():
            add_revision(self.cache, repo_id, [revision], step)
        return str(folder)


def test_downloads_allowed_list_the_hubs_refs_in_step_order(own_cache, monkeypatch):
    import huggingface_hub

    fake = FakeHub(own_cache)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_refs", fake.list_repo_refs)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", fake.list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    assert HubSeries(TINY).steps == list(STEPS)  # offline: the cache's steps
    series = find_series(TINY, allow_download=True)
    assert isinstance(series, HubSeries) and series.steps == [*STEPS, 64]
    assert fake.downloads == []  # listing fetches nothing
    handle = series.load(64, device="cpu")
    assert handle.info.checkpoint_step == 64 and handle.info.name == f"{TINY}@64"
    assert fake.downloads[0]["revision"] == "step64"
    assert "*.bin" in fake.downloads[0]["ignore_patterns"]  # safetensors there: no pickles
    by_number = load_model(f"{TINY}@64", device="cpu", allow_download=True)
    assert torch.equal(embedding(by_number), embedding(handle))
    with pytest.raises(UnknownModelError, match="the Hub has neither revision step7"):
        load_model(f"{TINY}@7", device="cpu", allow_download=True)
