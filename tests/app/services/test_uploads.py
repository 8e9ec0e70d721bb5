"""Uploads: each kind round-trips through the real readers; pickles, oversize files, bad
formats, zip traversal and bombs, non-finite values and name clashes are refused, and a failed
upload leaves nothing behind that lists as a store."""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import save as st_save

from analyses.sae import create_sae, load_sae, save_sae, save_saelens
from analyses.sae.io import state_tensors
from analyses.steering import SteeringVector
from workbench.errors import InputError, UnknownSiteError
from workbench.store import ActivationStore, StoreWriter
from workbench_app.services import uploads
from workbench_app.services.runsdir import stores_by_path
from workbench_app.services.upload_sae import import_sae
from workbench_app.services.uploads import import_activations, import_vector, upload_name


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def save_vector(vector, site, provenance, path):
    return SteeringVector(torch.from_numpy(vector), site, "upload", provenance).save(path)


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# -- activations ------------------------------------------------------------------------------


def test_npy_round_trips_into_a_listed_store(runs):
    acts = np.random.default_rng(0).normal(size=(70, 9)).astype(np.float32)
    done = import_activations(npy_bytes(acts), "my acts.npy", runs=runs, site="blocks.1.mlp")
    assert done.relative == "stores/uploads/my_acts" and done.path == runs / done.relative
    store = ActivationStore(done.path, verify=True)
    assert store.sites == ["blocks.1.mlp"] and store.n_rows == 70
    np.testing.assert_array_equal(store.read("blocks.1.mlp"), acts)
    assert store.provenance["uploaded_file"] == "my acts.npy"
    assert list(stores_by_path(runs)) == ["stores/uploads/my_acts"]  # the pages' store lists
    assert leftovers(runs / "stores/uploads") == ["my_acts"]  # no staging folder left


def test_safetensors_sites_and_labels_round_trip(runs, monkeypatch):
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 1000)  # several chunks
    rng = np.random.default_rng(1)
    tensors = {
        "blocks.0.hook_resid_post": rng.normal(size=(50, 6)).astype(np.float32),
        "blocks.1.hook_resid_post": rng.normal(size=(50, 4)).astype(np.float16),
        "y": np.arange(50, dtype=np.int64) % 3,
    }
    done = import_activations(st_save(tensors), "pair.safetensors", runs=runs, labels="y")
    store = ActivationStore(done.path)
    assert store.manifest["chunks"][1]  # written in more than one chunk
    assert store.sites == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    for site in store.sites:
        np.testing.assert_array_equal(store.read(site), tensors[site])
    np.testing.assert_array_equal(store.row_labels()["y"], tensors["y"])
    assert done.details["widths"] == {"blocks.0.hook_resid_post": 6, "blocks.1.hook_resid_post": 4}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_round_trip_with_a_label_column(runs, suffix):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(30, 3)).astype(np.float32), columns=["a", "b", "c"])
    frame.insert(1, "cls", np.arange(30) % 4)
    buf = io.BytesIO()
    frame.to_csv(buf, index=False) if suffix == ".csv" else frame.to_parquet(buf)
    done = import_activations(buf.getvalue(), f"t{suffix}", runs=runs, labels="cls")
    store = ActivationStore(done.path)
    np.testing.assert_allclose(store.read("acts"), frame[["a", "b", "c"]].to_numpy(), rtol=1e-6)
    labels = store.row_labels()["cls"]
    assert labels.dtype == np.int64 and labels.tolist() == frame["cls"].tolist()
    with pytest.raises(InputError, match="no column 'colour'; valid: a, cls, b, c"):
        import_activations(buf.getvalue(), f"t{suffix}", runs=runs, name="u", labels="colour")


def test_table_with_text_columns_is_refused_naming_them(runs):
    text = b"a,b,word\n1,2,x\n3,4,y\n"
    with pytest.raises(InputError, match=r"'w.csv' has non-numeric columns \['word'\]"):
        import_activations(text, "w.csv", runs=runs)
    assert leftovers(runs / "stores/uploads") == []


def test_a_pickle_bearing_npy_is_refused_and_never_unpickled(runs, tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # unpickling would call Path.touch(sentinel)
            return (pathlib.Path.touch, (sentinel,))

    data = npy_bytes(np.array([Payload()], dtype=object), allow_pickle=True)
    for call in (
        lambda: import_activations(data, "evil.npy", runs=runs),
        lambda: import_vector(data, "evil.npy", "s", save=save_vector, runs=runs),
    ):
        with pytest.raises(InputError, match="'evil.npy'.*pickled"):
            call()
    assert not sentinel.exists()
    assert stores_by_path(runs, complete_only=False) == {}


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4), np.float32), r"expected a 2-D \(rows, width\) matrix, got shape"),
        (np.zeros(5, np.float32), "expected a 2-D"),
        (np.zeros((0, 3), np.float32), "empty matrix"),
        (np.array([["a", "b"]]), "expected real numbers, got dtype <U1"),
        (np.ones((2, 2), complex), "expected real numbers, got dtype complex128"),
        (np.ones((2, 2), bool), "expected real numbers, got dtype bool"),
    ],
)
def test_non_2d_and_non_numeric_are_refused(runs, array, message):
    with pytest.raises(InputError, match=message):
        import_activations(npy_bytes(array), "x.npy", runs=runs)
    assert leftovers(runs / "stores/uploads") == []


def test_integers_become_floats(runs):
    acts = np.arange(12).reshape(4, 3)
    store = ActivationStore(import_activations(npy_bytes(acts), "i.npy", runs=runs).path)
    np.testing.assert_array_equal(store.read("acts"), acts.astype(np.float32))


def test_nan_is_refused_naming_where(runs):
    acts = np.ones((10, 4), np.float32)
    acts[3, 2] = np.nan
    with pytest.raises(
        InputError, match=r"'nan.npy', site 'acts': non-finite value nan at index \(3, 2\)"
    ):
        import_activations(npy_bytes(acts), "nan.npy", runs=runs)
    assert stores_by_path(runs, complete_only=False) == {}
    assert leftovers(runs / "stores/uploads") == []


def test_float64_overflow_to_inf_is_refused(runs):
    acts = np.ones((4, 2))
    acts[1, 1] = 1e300  # finite in float64, inf once stored as float32
    with pytest.raises(InputError, match=r"value 1e\+300 at index \(1, 1\) overflows float32"):
        import_activations(npy_bytes(acts), "big.npy", runs=runs)
    assert stores_by_path(runs, complete_only=False) == {}


def test_oversize_is_refused_before_parsing(runs, monkeypatch):
    monkeypatch.setattr(uploads, "ACTIVATIONS_LIMIT", 100)
    monkeypatch.setattr(uploads, "VECTOR_LIMIT", 100)
    monkeypatch.setattr(uploads, "SAE_LIMIT", 100)

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed an oversize upload")

    monkeypatch.setattr(np, "load", no_parsing)
    junk = b"\0" * 1000
    with pytest.raises(InputError, match=r"'big.npy' is 0.0 MiB; activation uploads are limited"):
        import_activations(junk, "big.npy", runs=runs)
    with pytest.raises(InputError, match="steering-vector uploads are limited to"):
        import_vector(junk, "big.npy", "s", save=save_vector, runs=runs)
    with pytest.raises(InputError, match="SAE uploads are limited to"):
        import_sae([("a.json", junk), ("a.safetensors", junk)], load=no_parsing, runs=runs)
    assert not runs.exists()  # nothing written, not even a folder


def test_bad_extensions_name_the_valid_ones(runs):
    with pytest.raises(InputError, match=r"'a.pt'.*valid: .npy, .safetensors, .csv, .parquet"):
        import_activations(b"x", "a.pt", runs=runs)
    with pytest.raises(InputError, match=r"'v.pkl'.*valid: .npy, .safetensors$"):
        import_vector(b"x", "v.pkl", "s", save=save_vector, runs=runs)
    with pytest.raises(InputError, match=r"'sae.tar'.*valid: .zip, .json, .safetensors"):
        import_sae([("sae.tar", b"x")], load=load_sae, runs=runs)


def test_an_existing_name_is_never_overwritten(runs):
    first = np.ones((3, 2), np.float32)
    done = import_activations(npy_bytes(first), "same.npy", runs=runs)
    with pytest.raises(InputError, match="'stores/uploads/same' already exists.*another name"):
        import_activations(npy_bytes(first * 2), "same.npy", runs=runs)
    np.testing.assert_array_equal(ActivationStore(done.path).read("acts"), first)
    assert leftovers(runs / "stores/uploads") == ["same"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        (".hidden", "hidden"),
        ("a..b", "a.b"),
        ("my acts (v2)", "my_acts_v2"),
        ("C:\\x\\y.npy", "y.npy"),
        ("...x...", "x"),
    ],
)
def test_names_are_sanitised(given, expected):
    assert upload_name(given) == expected


def test_an_unusable_name_is_refused(runs):
    with pytest.raises(InputError, match="no usable characters"):
        import_activations(npy_bytes(np.ones((2, 2))), "a.npy", runs=runs, name="../..")


def test_a_failed_upload_leaves_nothing_that_lists(runs, monkeypatch):
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 64)  # many chunks: fail after some commit
    calls = []
    append = StoreWriter.append

    def failing_append(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return append(self, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "append", failing_append)
    data = npy_bytes(np.ones((40, 4), np.float32))
    with pytest.raises(OSError, match="disk full"):
        import_activations(data, "a.npy", runs=runs)
    monkeypatch.setattr(StoreWriter, "append", append)

    def failing_finalize(self, *args, **kwargs):
        raise OSError("fsync failed")

    monkeypatch.setattr(StoreWriter, "finalize", failing_finalize)
    with pytest.raises(OSError, match="fsync failed"):
        import_activations(data, "a.npy", runs=runs)
    assert stores_by_path(runs, complete_only=False) == {}
    assert leftovers(runs / "stores/uploads") == []


def test_stale_staging_folders_are_swept(runs, monkeypatch):
    stale = runs / "stores/uploads/.partial-old-0000"
    stale.mkdir(parents=True)
    monkeypatch.setattr(uploads, "STALE_SECONDS", -1)
    import_activations(npy_bytes(np.ones((2, 2))), "a.npy", runs=runs)
    assert leftovers(runs / "stores/uploads") == ["a"]


# -- steering vectors -------------------------------------------------------------------------


def test_vectors_round_trip_into_the_steering_format(runs):
    vector = np.random.default_rng(3).normal(size=16).astype(np.float32)
    done = import_vector(
        npy_bytes(vector), "dir.npy", "blocks.2.hook_resid_pre", save=save_vector, runs=runs
    )
    assert done.relative == "vectors/uploads/dir.safetensors"
    loaded = SteeringVector.load(done.path)
    assert loaded.site == "blocks.2.hook_resid_pre" and loaded.method == "upload"
    np.testing.assert_array_equal(loaded.vector.numpy(), vector)
    # what the Steering page lists: a .safetensors whose .json sidecar has a method
    assert "method" in json.loads(done.path.with_suffix(".json").read_text())
    assert leftovers(runs / "vectors/uploads") == ["dir.json", "dir.safetensors"]

    from_st = import_vector(
        st_save({"anything": vector * 2}), "v.safetensors", "s", save=save_vector, runs=runs
    )
    np.testing.assert_array_equal(SteeringVector.load(from_st.path).vector.numpy(), vector * 2)
    with pytest.raises(InputError, match="'vectors/uploads/dir.safetensors' already exists"):
        import_vector(npy_bytes(vector), "dir.npy", "s", save=save_vector, runs=runs)


def test_vector_width_is_checked_against_the_models_sites(runs):
    widths = {"blocks.0.hook_resid_pre": 8, "blocks.1.hook_resid_pre": 8}
    data = npy_bytes(np.ones(6, np.float32))
    with pytest.raises(InputError, match="width 6, but site 'blocks.1.hook_resid_pre' has width 8"):
        import_vector(
            data, "v.npy", "blocks.1.hook_resid_pre", save=save_vector, runs=runs, sites=widths
        )
    with pytest.raises(UnknownSiteError, match="no site 'blocks.9.hook_resid_pre'; closest"):
        import_vector(
            data, "v.npy", "blocks.9.hook_resid_pre", save=save_vector, runs=runs, sites=widths
        )
    ok = npy_bytes(np.ones(8, np.float32))
    import_vector(ok, "v.npy", "blocks.1.hook_resid_pre", save=save_vector, runs=runs, sites=widths)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((2, 3), np.float32), r"1-D \(width,\), got shape \(2, 3\)"),
        (np.array([1.0, np.inf]), "non-finite value inf"),
        (np.zeros(4), "zero vector"),
        (np.array(["a"]), "expected real numbers"),
    ],
)
def test_bad_vectors_are_refused(runs, array, message):
    with pytest.raises(InputError, match=message):
        import_vector(npy_bytes(array), "v.npy", "s", save=save_vector, runs=runs)
    assert leftovers(runs / "vectors/uploads") == []


def test_a_vector_file_with_several_tensors_is_refused(runs):
    data = st_save({"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)})
    with pytest.raises(InputError, match=r"holds tensors \['a', 'b'\]; a vector file holds one"):
        import_vector(data, "v.safetensors", "s", save=save_vector, runs=runs)


# -- SAEs -------------------------------------------------------------------------------------


def same_sae(a, b) -> None:
    wa, wb = state_tensors(a), state_tensors(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=0)


@pytest.fixture
def sae():
    torch.manual_seed(0)
    return create_sae("topk", d_in=8, d_sae=16, k=4)


def test_our_sae_format_round_trips_from_two_files(runs, tmp_path, sae):
    folder = save_sae(sae, tmp_path / "ours", meta={"site": "blocks.1.hook_resid_post"})
    files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    done = import_sae(files, load=load_sae, runs=runs, name="mine")
    assert done.relative == "sae/uploads/mine" and done.details["format"] == "workbench"
    loaded, meta = load_sae(done.path)
    same_sae(loaded, sae)
    assert meta["site"] == "blocks.1.hook_resid_post"
    assert json.loads((done.path / "upload.json").read_text())["format"] == "workbench"
    assert leftovers(runs / "sae/uploads") == ["mine"]


def test_a_saelens_zip_round_trips(runs, tmp_path, sae):
    folder = save_saelens(sae, tmp_path / "lens", meta={"site": "blocks.0.hook_resid_post"})
    members = {f"lens/{p.name}": p.read_bytes() for p in folder.iterdir()}
    members["__MACOSX/lens/._cfg.json"] = b"junk"  # Finder's resource forks are skipped
    done = import_sae([("lens.zip", zip_bytes(members))], load=load_sae, runs=runs)
    assert done.relative == "sae/uploads/lens" and done.details["format"] == "saelens"
    assert sorted(p.name for p in done.path.iterdir()) == [
        "cfg.json",
        "sae_weights.safetensors",
        "upload.json",
    ]
    loaded, meta = load_sae(done.path)
    same_sae(loaded, sae)
    assert meta["format"] == "saelens" and meta["site"] == "blocks.0.hook_resid_post"


@pytest.mark.parametrize("member", ["../cfg.json", "/etc/cfg.json", "a/b/cfg.json", "a\\cfg.json"])
def test_zip_path_traversal_is_refused(runs, member):
    data = zip_bytes({member: b"{}", "sae_weights.safetensors": b"x"})
    with pytest.raises(InputError, match="refusing member"):
        import_sae([("bad.zip", data)], load=load_sae, runs=runs)
    assert not (runs / "cfg.json").exists() and leftovers(runs / "sae/uploads") == []


def test_zip_bombs_are_refused(runs, monkeypatch):
    monkeypatch.setattr(uploads, "SAE_LIMIT", 64 * 1024)
    bomb = zip_bytes({"cfg.json": b"{}", "sae_weights.safetensors": b"\0" * 10_000_000})
    assert len(bomb) < 64 * 1024  # small on the wire
    with pytest.raises(InputError, match=r"unpacks to 9.5 MiB; the limit is 0.0625 MiB"):
        import_sae([("bomb.zip", bomb)], load=load_sae, runs=runs)
    # a bomb whose headers lie about its size: zipfile stops at the declared size, and the CRC fails
    lying = bytearray(bomb)
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := lying.find(header, start)) >= 0:
            if b"sae_weights" in lying[at : at + 80]:
                lying[at + offset : at + offset + 4] = (10).to_bytes(4, "little")
            start = at + 4
    with pytest.raises(InputError, match="bomb.zip.*cannot read member.*Bad CRC"):
        import_sae([("bomb.zip", bytes(lying))], load=load_sae, runs=runs)
    assert leftovers(runs / "sae/uploads") == []


def test_sae_config_bigger_than_its_weights_is_refused_before_loading(runs, tmp_path, sae):
    folder = save_saelens(sae, tmp_path / "lens")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["d_sae"] = 10**9  # building this module would allocate terabytes

    def never(_):
        raise AssertionError("the loader ran")

    files = [
        ("cfg.json", json.dumps(cfg).encode()),
        ("sae_weights.safetensors", (folder / "sae_weights.safetensors").read_bytes()),
    ]
    with pytest.raises(
        InputError, match=r"W_enc has shape \(8, 16\); the config says \(8, 1000000000\)"
    ):
        import_sae(files, load=never, runs=runs)


def test_sae_loader_errors_refuse_the_upload(runs, tmp_path, sae):
    folder = save_saelens(sae, tmp_path / "lens")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["architecture"] = "gated"
    files = [
        ("cfg.json", json.dumps(cfg).encode()),
        ("sae_weights.safetensors", (folder / "sae_weights.safetensors").read_bytes()),
    ]
    with pytest.raises(InputError, match="not a loadable SAE: .*architecture 'gated'"):
        import_sae(files, load=load_sae, runs=runs)
    assert leftovers(runs / "sae/uploads") == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("cfg.json", b"{}")], "one JSON config and one safetensors"),
        ([("cfg.json", b"[1]"), ("w.safetensors", b"x")], "must hold a JSON object"),
        ([("cfg.json", b"{nope"), ("w.safetensors", b"x")], "not valid JSON"),
        ([("cfg.json", b'{"a": 1}'), ("w.safetensors", b"x")], "neither a workbench SAE"),
        ([("a.zip", b"PK"), ("w.json", b"{}")], "either one .zip"),
        ([("a.zip", b"not a zip")], "not a readable zip"),
    ],
)
def test_malformed_sae_uploads_are_refused(runs, files, message):
    with pytest.raises(InputError, match=message):
        import_sae(files, load=load_sae, runs=runs)


def test_the_app_server_accepts_the_largest_upload():
    """`workbench app` raises streamlit's per-file cap (200 MB by default) to our largest limit."""
    from workbench_app.launch import streamlit_command

    argv = streamlit_command("127.0.0.1", 8501, Path("runs"))
    cap_mib = int(argv[argv.index("--server.maxUploadSize") + 1])
    assert cap_mib * uploads.MiB == max(
        uploads.ACTIVATIONS_LIMIT, uploads.VECTOR_LIMIT, uploads.SAE_LIMIT
    )
    assert cap_mib == 512
