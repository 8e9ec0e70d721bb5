"""The one checkpoint loop (`workbench.analysis.checkpoints`): steps in ascending order, each
handle the right checkpoint (its planted weights, its step, its file's hash), one handle alive
at a time, step names checked before anything loads, and the series resolved from a zoo name or
a folder."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from workbench.analysis.checkpoints import (
    as_series,
    capture_stores,
    find_series,
    iter_checkpoints,
    resolve_steps,
)
from workbench.errors import InputError
from workbench.models import CheckpointSeries
from workbench.models.weights import hash_files

STEPS = [0, 10, 20, 30]


def _module() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.fixture
def series(tmp_path):
    """step_<N>.safetensors state dicts whose every weight equals N (written out of order).
    `series.built` gets, for each checkpoint loaded, how many of the objects whose weakrefs a
    test put in `series.watched` were still alive when the load began."""
    for step in (20, 0, 30, 10):
        module = _module()
        with torch.no_grad():
            for p in module.parameters():
                p.fill_(float(step))
        save_file(module.state_dict(), str(tmp_path / f"step_{step}.safetensors"))
    built: list[int] = []
    watched: list[weakref.ref] = []

    def build() -> nn.Module:
        built.append(sum(r() is not None for r in watched))
        return _module()

    found = CheckpointSeries(tmp_path, build=build, name="planted")
    found.built, found.watched = built, watched  # type: ignore[attr-defined]
    return found


def test_steps_come_in_order_and_each_handle_is_its_checkpoint(series):
    seen = []
    for step, handle in iter_checkpoints(series, [30, "first", "10", 10], device="cpu"):
        assert handle.info.checkpoint_step == step
        assert all(torch.all(p == step) for p in handle.model.parameters())
        assert handle.weights_hash == hash_files([series.folder / f"step_{step}.safetensors"])
        seen.append(step)
        del handle
    assert seen == [0, 10, 30]
    assert [step for step, _ in iter_checkpoints(series, device="cpu")] == STEPS


def test_at_most_one_handle_is_alive(series):
    """No earlier handle (nor its model) is alive while the next checkpoint loads."""
    for _, handle in iter_checkpoints(series, device="cpu"):
        series.watched += [weakref.ref(handle), weakref.ref(handle.model)]
        del handle
    assert series.built == [0] * len(STEPS)
    gc.collect()
    assert all(r() is None for r in series.watched)


def test_leaving_the_loop_early_frees_the_checkpoint(series):
    walk = iter_checkpoints(series, device="cpu")
    _, handle = next(walk)
    ref = weakref.ref(handle)
    del handle
    walk.close()
    assert ref() is None


@pytest.mark.parametrize("bad", [5, "5", "step10", 1.5, "latest"])
def test_a_bad_step_names_the_valid_ones_before_anything_loads(series, bad):
    with pytest.raises(InputError, match=r"no step .*; valid: first, last, 0, 10, 20, 30$"):
        next(iter_checkpoints(series, [0, bad], device="cpu"))
    assert series.built == []


def test_resolve_steps():
    assert resolve_steps(STEPS) == STEPS
    assert resolve_steps(STEPS, "last") == [30]
    assert resolve_steps(STEPS, ["last", "final", np.int64(10), "0"]) == [0, 10, 30]
    with pytest.raises(InputError, match="no step True"):
        resolve_steps(STEPS, [True, 40])


def test_series_from_a_folder_a_zoo_name_or_nothing(series, quick_zoo, tmp_path):
    assert as_series(series) is series
    assert as_series(str(series.folder)).steps == STEPS
    toy = as_series("toy-lm", quick_zoo)
    assert toy.folder == quick_zoo / "toy-lm" and toy.steps == sorted(toy.steps)
    assert find_series(tmp_path / "missing") is None
    with pytest.raises(InputError, match="not a checkpoint series: .*toy-lm"):
        as_series(tmp_path / "missing")


def test_capture_stores_writes_one_store_per_checkpoint_and_reuses_them(quick_zoo, tmp_path):
    toy = as_series("toy-lm", quick_zoo)
    steps = [toy.steps[-1], toy.steps[0]]
    texts = ["the dog sat", "a cat ran on the mat"]
    kwargs = dict(sites="blocks.0.hook_resid_post", examples=texts, out=tmp_path, device="cpu")
    stores = capture_stores(toy, steps=steps, zoo_root=quick_zoo, **kwargs)
    assert list(stores) == sorted(steps)
    for step, store in stores.items():
        assert store.path == tmp_path / f"step{step}"
        assert store.spec["checkpoint_step"] == step
    first, last = (stores[s].read("blocks.0.hook_resid_post") for s in sorted(steps))
    assert not np.allclose(first, last)  # training changed the activations
    again = capture_stores("toy-lm", steps=steps, zoo_root=quick_zoo, **kwargs)
    np.testing.assert_array_equal(again[steps[0]].read("blocks.0.hook_resid_post"), last)
