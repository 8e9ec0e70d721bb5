"""Upload page: bring your own activations, steering vectors and SAEs into the runs directory.

Thin: `workbench_app.services.uploads` (SAEs: `workbench_app.services.upload_sae`) checks each file (size limit first, no
pickles, names sanitised, no overwrite) and writes it where the other pages look: activations
become a store under `stores/uploads/` (Explore, Geometry), a vector lands under
`vectors/uploads/` (Steering), an SAE under `sae/uploads/` (`workbench sae features --sae ...`).
Each section is a form, so a file is imported once, when its button is pressed, not on every
rerun.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from workbench.errors import WorkbenchError
from workbench.zoo import list_zoo, zoo_root
from workbench_app.lib.links import page_link
from workbench_app.lib.pickers import stop_if_empty
from workbench_app.services import uploads
from workbench_app.services.runsdir import runs_root
from workbench_app.services.upload_sae import import_sae

st.set_page_config(page_title="Workbench: upload", layout="wide")
root = runs_root()
VECTOR_MODEL = "toy-lm"  # the model the Steering page applies vectors to
VECTOR_SITES = "blocks.*.hook_resid_pre"  # the sites it offers


@st.cache_resource(show_spinner="loading the model to read its site widths...")
def site_widths(name: str, zoo: str) -> dict[str, int]:
    """Site -> width (last dim) of the steering sites of zoo model `name`, from one forward."""
    from workbench.hooks.capture import capture
    from workbench.sites.names import expand_sites
    from workbench.zoo import load_series

    series = load_series(name, zoo)
    handle = series.load(series.steps[-1], device="cpu")
    sites = expand_sites(handle.sites(), VECTOR_SITES)
    acts = capture(handle, sites, ["the"])
    return {site: int(acts[site].shape[-1]) for site in sites}


def save_vector(vector: np.ndarray, site: str, provenance: dict, path: Path) -> Path:
    """Write `vector` in the format the Steering page reads (`SteeringVector.save`)."""
    import torch

    from analyses.steering import SteeringVector

    return SteeringVector(torch.from_numpy(vector), site, "upload", provenance).save(path)


def load_sae(directory: Path):
    from analyses.sae import load_sae as load

    return load(directory)


def limit(n_bytes: int) -> str:
    return f"{n_bytes / uploads.MiB:g} MiB"


st.title("Upload")
st.caption(
    "Bring your own activations, steering vectors and SAEs. Files are checked before anything "
    "is written: size limits, no pickles (only .npy without objects, safetensors, JSON, CSV and "
    f"parquet), finite numbers; an existing name is never overwritten. Runs directory: `{root}`"
)
stop_if_empty(root, stop=False)  # an upload below fills it too

st.subheader("Activations")
with st.form("upload-activations"):
    acts_file = st.file_uploader(
        f"A (rows, width) matrix, at most {limit(uploads.ACTIVATIONS_LIMIT)}: .npy, .safetensors (one "
        "site per 2-D tensor), .csv or .parquet (numeric columns)",
        type=[f.lstrip(".") for f in uploads.ACTIVATION_FORMATS],
        max_upload_size=uploads.ACTIVATIONS_LIMIT // uploads.MiB,
    )
    c1, c2, c3 = st.columns(3)
    acts_name = c1.text_input("Store name", placeholder="default: the file's name")
    acts_site = c2.text_input(
        "Site (.npy and tables)",
        placeholder=uploads.DEFAULT_SITE,
        help="a .safetensors names its sites",
    )
    acts_labels = c3.text_input(
        "Labels (optional)", help="a table column, or a 1-D tensor of the .safetensors"
    )
    acts_go = st.form_submit_button("Import activations")
if acts_go:
    if acts_file is None:
        st.warning("Choose a file first.")
    else:
        try:
            done = uploads.import_activations(
                acts_file.getvalue(),
                acts_file.name,
                runs=root,
                name=acts_name.strip() or None,
                site=acts_site.strip() or None,
                labels=acts_labels.strip() or None,
            )
        except WorkbenchError as exc:
            st.error(str(exc))
        else:
            d = done.details
            st.success(
                f"Stored `{acts_file.name}` as `{done.relative}`: {d['n_rows']:,} rows, sites "
                + ", ".join(f"`{s}` ({w})" for s, w in d["widths"].items())
            )
            explore, geometry = (page_link(p, store=done.relative) for p in ("Explore", "Geometry"))
            st.markdown(f"- [Explore]({explore}) · [Geometry]({geometry})")

st.subheader("Steering vector")
built = [r["name"] for r in list_zoo() if r["built"] and r["name"] == VECTOR_MODEL]
with st.form("upload-vector"):
    vector_file = st.file_uploader(
        f"A 1-D (width,) vector, at most {limit(uploads.VECTOR_LIMIT)}: .npy or .safetensors (one tensor)",
        type=[f.lstrip(".") for f in uploads.VECTOR_FORMATS],
        max_upload_size=uploads.VECTOR_LIMIT // uploads.MiB,
    )
    c1, c2, c3 = st.columns(3)
    vector_name = c1.text_input("Vector name", placeholder="default: the file's name")
    vector_site = c2.text_input(
        "Site it is for", value="blocks.2.hook_resid_pre", help="where it is added"
    )
    check = c3.selectbox(
        "Check the width against",
        [*built, "(no model: only 1-D and finite)"],
        help=f"the Steering page applies vectors to {VECTOR_MODEL} at {VECTOR_SITES}",
    )
    vector_go = st.form_submit_button("Import vector")
if vector_go:
    if vector_file is None:
        st.warning("Choose a file first.")
    else:
        try:
            widths = site_widths(check, str(zoo_root())) if check in built else None
            done = uploads.import_vector(
                vector_file.getvalue(),
                vector_file.name,
                vector_site,
                save=save_vector,
                runs=root,
                name=vector_name.strip() or None,
                sites=widths,
            )
        except WorkbenchError as exc:
            st.error(str(exc))
        else:
            st.success(
                f"Saved `{vector_file.name}` as `{done.relative}` for site "
                f"`{done.details['site']}` (width {done.details['width']})"
            )
            steering = page_link("Steering", direction=f"saved: {done.relative}")
            st.markdown(f"- [Steering]({steering})")

st.subheader("Sparse autoencoder")
with st.form("upload-sae"):
    sae_files = st.file_uploader(
        f"A .zip, or its two files, at most {limit(uploads.SAE_LIMIT)} together (unpacked): ours "
        "(config.json + sae.safetensors) or SAELens's (cfg.json + sae_weights.safetensors; "
        "architectures standard, topk, jumprelu)",
        type=[f.lstrip(".") for f in uploads.SAE_FORMATS],
        accept_multiple_files=True,
        max_upload_size=uploads.SAE_LIMIT // uploads.MiB,
    )
    sae_name = st.text_input("SAE name", placeholder="default: the first file's name")
    sae_go = st.form_submit_button("Import SAE")
if sae_go:
    if not sae_files:
        st.warning("Choose the files first.")
    else:
        try:
            done = import_sae(
                [(f.name, f.getvalue()) for f in sae_files],
                load=load_sae,
                runs=root,
                name=sae_name.strip() or None,
            )
        except WorkbenchError as exc:
            st.error(str(exc))
        else:
            d = done.details
            st.success(
                f"Saved the {d['format']} {d.get('architecture') or ''} SAE as `{done.relative}` "
                f"(d_in {d['d_in']}, d_sae {d['d_sae']})"
            )
            st.markdown(
                "Describe its features for the SAE features page: `workbench sae features "
                f"--sae {done.path} --store {root}/stores/NAME --out {done.path}/features`"
            )
