"""append() rejects inconsistent inputs with errors that name the site and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import InputError, NonFiniteActivationError
from workbench.store import StoreWriter

SITE_A, SITE_B = "blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"


def _files(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*.npy"))


def test_sites_must_have_the_same_rows(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    acts = dict(chunks[0]["acts"])
    acts[SITE_B] = acts[SITE_B][:19]
    with pytest.raises(InputError) as info:
        writer.append(**{**chunks[0], "acts": acts})
    message = str(info.value)
    assert SITE_A in message and SITE_B in message
    assert "(19, 2, 3)" in message and "(20, 6)" in message
    assert _files(tmp_path / "s") == [] and writer.n_chunks == 0


def test_missing_and_unexpected_sites(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    acts = {SITE_A: chunks[0]["acts"][SITE_A]}  # spec["sites"] lists both
    with pytest.raises(InputError, match=rf"missing \['{SITE_B}'\]"):
        writer.append(**{**chunks[0], "acts": acts})
    # without spec["sites"], the first chunk fixes the set
    free = StoreWriter(tmp_path / "t", {"model": "m"})
    free.append(**chunks[0])
    acts = {**chunks[1]["acts"], "blocks.2.hook_resid_post": chunks[1]["acts"][SITE_A]}
    with pytest.raises(InputError, match=r"unexpected \['blocks.2.hook_resid_post'\]"):
        free.append(**{**chunks[1], "acts": acts})


def test_width_must_not_change(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    writer.append(**chunks[0])
    acts = dict(chunks[1]["acts"])
    acts[SITE_B] = np.zeros((20, 7), np.float32)
    with pytest.raises(InputError) as info:
        writer.append(**{**chunks[1], "acts": acts})
    message = str(info.value)
    assert SITE_B in message and "(rows, 2, 3)" in message and "(20, 7)" in message
    assert writer.n_chunks == 1 and len(_files(tmp_path / "s")) == 7


def test_row_metadata_lengths_and_dtypes(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    with pytest.raises(InputError, match=r"token_ids: expected shape \(20,\).*got \(19,\)"):
        writer.append(**{**chunks[0], "token_ids": chunks[0]["token_ids"][:19]})
    with pytest.raises(InputError, match="example_index is required"):
        writer.append(**{**chunks[0], "example_index": None})
    with pytest.raises(InputError, match="position: expected integers"):
        writer.append(**{**chunks[0], "position": chunks[0]["position"] * 0.5})
    acts = {**chunks[0]["acts"], SITE_A: chunks[0]["acts"][SITE_A].astype(np.int32)}
    with pytest.raises(InputError, match=f"site '{SITE_A}'.*floating point.*int32"):
        writer.append(**{**chunks[0], "acts": acts})
    with pytest.raises(InputError, match=r"row_labels\['is_noun'\]: expected shape \(20,\)"):
        writer.append(**{**chunks[0], "row_labels": {"is_noun": np.zeros(3)}})
    with pytest.raises(InputError, match=r"example_labels\['sentiment'\]: expected shape \(5,\)"):
        writer.append(**{**chunks[0], "example_labels": {"sentiment": np.zeros(20)}})
    writer.append(**chunks[0])
    with pytest.raises(InputError, match=r"has labels \['is_noun'\], got \[\]"):
        writer.append(**{**chunks[1], "row_labels": None})
    assert writer.n_chunks == 1


def test_non_finite_values_are_refused(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    writer.append(**chunks[0])
    acts = dict(chunks[1]["acts"])
    acts[SITE_A] = acts[SITE_A].copy()
    acts[SITE_A][13, 2] = np.nan
    with pytest.raises(NonFiniteActivationError, match=f"'{SITE_A}'.*row 13.*dim 2"):
        writer.append(**{**chunks[1], "acts": acts})
    assert (
        writer.n_chunks == 1
        and not (tmp_path / "s" / "sites" / SITE_A / "chunk_000001.npy").exists()
    )
    # float16 overflow is caught on the stored values
    half = StoreWriter(tmp_path / "h", spec_for(dtype="float16"))
    acts = {**chunks[0]["acts"], SITE_B: chunks[0]["acts"][SITE_B] * 1e6}
    with pytest.raises(NonFiniteActivationError, match="stored as float16"):
        half.append(**{**chunks[0], "acts": acts})
    writer.append(**chunks[1])  # the writer carries on
    assert writer.n_chunks == 2
