"""Jobs page: start the heavy work (a capture into a store, an SAE training, a batch spec) as a
job, and follow it: status (with its place while it waits in the queue), progress, elapsed
time, the log's tail, cancel, a link to the page where its output shows up, and delete a
finished job's folder (one, or all finished ones at once; never their output).

A job is a process of its own (`workbench.jobs`), not part of a page run: the page stays
responsive, and a job goes on through a reload or an app restart. Only the job list refreshes
itself (a fragment: every 2 s while a job is active, every 10 s otherwise, so that jobs started
elsewhere show up). The selected job lives in the URL. At most `max_jobs()` jobs run at once
($WORKBENCH_MAX_JOBS, default 1); the others start in turn, first in, first out.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from workbench.app_state import state_key, url_selectbox
from workbench.data import dataset_names
from workbench.errors import InputError
from workbench.jobs import (
    MAX_JOBS_ENV,
    SAE_ARCHITECTURES,
    STORE_DTYPES,
    Job,
    batch_specs,
    cancel_job,
    capture_models,
    delete_finished_jobs,
    delete_job,
    list_jobs,
    log_tail,
    max_jobs,
    start_batch,
    start_capture,
    start_sae,
)
from workbench.runsdir import inside_runs, runs_root, stores_by_path

st.set_page_config(page_title="Workbench: jobs", layout="wide")
root = runs_root()
PAGE = "jobs"  # namespaces its widgets' session state (shared by every page of the app)
REFRESH_S = 2.0  # the job list's refresh while a job is active
IDLE_REFRESH_S = 10.0  # and while none is (to notice jobs started elsewhere)
#: where a job's output shows up: (page file, page title, URL parameter)
OUTPUT_PAGES = {
    "capture": ("pages/12_Explore.py", "Explore", "store"),
    "sae": ("pages/7_SAE_features.py", "SAE features", "features"),
    "batch": ("pages/11_Batch.py", "Batch", "batch"),
}
EXAMPLE_SPEC = """\
name: toy-lm-anisotropy
device: cpu
models:
  - model: toy-lm
    steps: [0, last]
datasets:
  - dataset: grammar-lm
    n_examples: 64
    max_length: 32
sites: ["blocks.*.hook_resid_post"]
analyses:
  - analysis: anisotropy
"""


def started(job: Job) -> None:
    """Select the new job in the list (drawn below, later in this run) and in the URL."""
    st.session_state[state_key(PAGE, "job")] = job.id
    st.query_params["job"] = job.id
    st.success(f"Started job `{job.id}`: {job.title}. Follow it in the list below.")


def start(launch, **fields) -> None:
    try:
        job = launch(**fields, root=root)
    except InputError as exc:
        st.error(str(exc))
    else:
        started(job)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def elapsed(job: Job) -> str:
    """Its commands' run time; the wait so far while it is queued; "-" if it never ran."""
    if job.started is None:
        return f"waiting {duration(job.waited_s())}" if job.active else "-"
    return duration(job.elapsed_s())


def limit_text() -> str:
    try:
        n = max_jobs()
    except InputError as exc:
        return f"**{exc}**: no job can start until it is fixed"
    return (
        f"At most {n} job{'s' if n > 1 else ''} run{'' if n > 1 else 's'} at once "
        f"(`${MAX_JOBS_ENV}` of the app, default 1); the others wait in a queue and start "
        "in turn, first in, first out."
    )


FLASH = f"{PAGE}-flash"  # the outcome of a delete, shown on the next run


def delete_one(job_id: str) -> None:
    """The Delete button's callback (it runs before the page redraws the list)."""
    try:
        delete_job(job_id, root)
    except InputError as exc:  # it started meanwhile, or is gone
        st.session_state[FLASH] = ("warning", str(exc))
    else:
        st.session_state[FLASH] = ("success", f"Deleted job {job_id} (its output stays).")


def delete_finished() -> None:
    deleted = delete_finished_jobs(root)
    n = len(deleted)
    st.session_state[FLASH] = (
        "success",
        f"Deleted {n} finished job{'s' if n != 1 else ''} (their outputs stay).",
    )


def capture_form() -> None:
    models = capture_models(root)
    model = st.selectbox(
        "Model",
        # built ones first, toy-lm (the richest zoo model: labels, checkpoints) first of those
        sorted(models, key=lambda n: (not models[n]["built"], n != "toy-lm")),
        key=f"{PAGE}-capture-model",
        format_func=lambda n: (
            n if models[n]["built"] else f"{n} (not built yet: the job builds it)"
        ),
        help="zoo models, minilm, and Hugging Face folders under models/ in the runs directory",
    )
    info = models[model]
    datasets = dataset_names()
    with st.form(f"{PAGE}-capture-form"):
        left, right = st.columns(2)
        dataset = left.selectbox(
            "Dataset",
            datasets,
            index=datasets.index(info["dataset"]) if info["dataset"] in datasets else 0,
            key=f"{PAGE}-capture-dataset-{model}",
        )
        n_examples = right.number_input("Examples", 1, 1_000_000, 128, key=f"{PAGE}-capture-n")
        sites = left.text_input(
            "Sites (names or patterns, comma separated)",
            info["sites"],
            key=f"{PAGE}-capture-sites-{model}",
        )
        out = right.text_input(
            "Store folder (inside the runs directory)",
            "",
            placeholder=f"stores/{slug(model)}-DATASET",
            key=f"{PAGE}-capture-out",
        )
        with st.expander("More settings"):
            a, b, c, d = st.columns(4)
            positions = a.text_input("Positions", "all", key=f"{PAGE}-capture-positions")
            batch_size = b.number_input("Batch size", 1, 4096, 32, key=f"{PAGE}-capture-batch")
            max_length = c.number_input("Max tokens", 1, 8192, 128, key=f"{PAGE}-capture-len")
            dtype = d.selectbox("Stored dtype", STORE_DTYPES, key=f"{PAGE}-capture-dtype")
        if st.form_submit_button("Start capture", type="primary"):
            start(
                start_capture,
                model=model,
                dataset=dataset,
                sites=sites,
                n_examples=int(n_examples),
                out=out.strip() or f"stores/{slug(model)}-{dataset}",
                positions=positions.strip(),
                batch_size=int(batch_size),
                max_length=int(max_length),
                store_dtype=dtype,
            )


def sae_form() -> None:
    stores = stores_by_path(root)
    if not stores:
        st.info("No complete store under the runs directory yet: start a capture first.")
        return
    store = st.selectbox("Store", list(stores), key=f"{PAGE}-sae-store")
    sites = stores[store]["sites"]
    with st.form(f"{PAGE}-sae-form"):
        left, mid, right = st.columns(3)
        site = left.selectbox("Site", sites, index=len(sites) - 1, key=f"{PAGE}-sae-site-{store}")
        arch = mid.selectbox("Architecture", SAE_ARCHITECTURES, key=f"{PAGE}-sae-arch")
        k = right.number_input("k (active latents, topk)", 1, 4096, 16, key=f"{PAGE}-sae-k")
        d_sae = left.number_input(
            "Latents (0: 8 x the site's width)", 0, 1_048_576, 0, key=f"{PAGE}-sae-d"
        )
        steps = mid.number_input("Steps", 1, 1_000_000, 500, key=f"{PAGE}-sae-steps")
        batch_size = right.number_input("Batch size", 1, 65536, 256, key=f"{PAGE}-sae-batch")
        lr = left.number_input(
            "Learning rate", 1e-6, 1.0, 4e-4, step=1e-4, format="%.1e", key=f"{PAGE}-sae-lr"
        )
        out = mid.text_input(
            "SAE folder (inside the runs directory)",
            "",
            placeholder=f"sae/{slug(Path(store).name)}-SITE",
            key=f"{PAGE}-sae-out",
        )
        st.caption("Trains the SAE, then writes its feature statistics into FOLDER/features.")
        if st.form_submit_button("Start SAE training", type="primary"):
            start(
                start_sae,
                store=store,
                site=site,
                arch=arch,
                k=int(k),
                d_sae=int(d_sae) or None,
                steps=int(steps),
                batch_size=int(batch_size),
                lr=float(lr),
                out=out.strip() or f"sae/{slug(Path(store).name)}-{slug(site)}",
            )


def batch_form() -> None:
    specs = batch_specs(root)
    sources = ["Paste YAML", "A spec file in the runs directory"]
    source = st.radio("Spec", sources, index=1 if specs else 0, key=f"{PAGE}-batch-source")
    with st.form(f"{PAGE}-batch-form"):
        if source == sources[1]:
            if not specs:
                st.info("No .yaml spec under the runs directory: paste one instead.")
            spec = st.selectbox("Spec file", specs, key=f"{PAGE}-batch-spec")
            text = None
        else:
            spec = None
            text = st.text_area("Spec (YAML)", EXAMPLE_SPEC, height=300, key=f"{PAGE}-yaml")
        left, right = st.columns(2)
        out = left.text_input(
            "Results folder (inside the runs directory)",
            "",
            placeholder="batch/SPEC-NAME",
            key=f"{PAGE}-batch-out",
        )
        workers = right.number_input("Local workers", 1, 64, 1, key=f"{PAGE}-batch-workers")
        if st.form_submit_button("Start batch run", type="primary"):
            if spec is None and text is None:
                st.error("Choose a spec file or paste one.")
            else:
                start(
                    start_batch,
                    spec=spec,
                    spec_text=text,
                    out=out.strip() or None,
                    workers=int(workers),
                )


def output_link(job: Job) -> None:
    page, title, param = OUTPUT_PAGES[job.kind]
    value = f"{job.out}/features" if job.kind == "sae" else job.out
    path = inside_runs(value, root)
    if job.state != "done" or path is None or not path.exists():
        st.caption(f"Output: `{job.out}` (inside the runs directory)")
        return
    try:
        st.page_link(page, label=f"Open in {title}", query_params={param: value})
    except StreamlitAPIException:  # this page run on its own (no page registry): a plain link
        url = f"{Path(page).stem.split('_', 1)[1]}?{urlencode({param: value})}"
        st.markdown(f"Output: [{title}: `{value}`]({url})")


def job_details(job: Job) -> None:
    st.markdown(f"**{job.title}**: {job.label}, {elapsed(job)}")
    if job.progress is not None:
        st.progress(min(max(job.progress, 0.0), 1.0), text=job.progress_text)
    elif job.state == "queued" and job.pid is not None:
        st.caption(
            "Waiting for its turn: it starts when fewer jobs than the limit run ahead of it "
            f"({job.label})."
        )
    elif job.active:
        st.caption("Starting (no progress reported yet)...")
    cancellable = job.active and not job.cancel_requested
    if cancellable and st.button("Cancel", key=f"{PAGE}-cancel-{job.id}"):
        try:
            job = cancel_job(job.id, root)
        except InputError as exc:  # it ended meanwhile
            st.warning(str(exc))
        else:
            st.toast(f"Cancelling job {job.id}")
    st.button(
        "Delete",
        key=f"{PAGE}-delete-{job.id}",
        disabled=job.active,
        on_click=delete_one,
        args=(job.id,),
        help=(
            "Cancel it first: only a finished job can be deleted"
            if job.active
            else f"Deletes its folder jobs/{job.id} (record and log); its output stays"
        ),
    )
    output_link(job)
    if job.lost:
        st.error(
            "The job's runner ended without writing how its command ended (killed, or the "
            "machine restarted); the log's end is below."
        )
    elif job.state == "failed":
        st.error(f"Exit code {job.exit_code}; the log's end is below.")
    st.code(log_tail(job) or "(no output yet)", language=None)
    with st.expander("Command"):
        st.code("\n".join(shlex.join(argv) for argv in job.commands), language="bash")
        st.caption(f"Job folder: `{job.folder}`")


def job_list(was_active: bool) -> None:
    flash = st.session_state.pop(FLASH, None)
    if flash is not None:
        getattr(st, flash[0])(flash[1])
    jobs = list_jobs(root)
    if not jobs:
        st.info("No jobs yet. Start a capture, an SAE training or a batch run above.")
        return
    if any(job.active for job in jobs) != was_active:
        st.rerun()  # a job started elsewhere, or the last one ended: refresh at the other pace
    st.dataframe(
        pd.DataFrame(
            {
                "job": job.id,
                "what": job.title,
                "status": job.label,
                "progress": job.progress,
                "elapsed": elapsed(job),
                "output": job.out,
            }
            for job in jobs
        ),
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        hide_index=True,
        width="stretch",
    )
    finished = [job for job in jobs if not job.active]
    st.button(
        f"Delete all finished jobs ({len(finished)})",
        key=f"{PAGE}-delete-finished",
        disabled=not finished,
        on_click=delete_finished,
        help="Deletes the folders jobs/ID of every done, failed, cancelled or lost job (records "
        "and logs); their outputs stay, and queued or running jobs are left alone",
    )
    by_id = {job.id: job for job in jobs}
    choice = url_selectbox(
        "Job",
        list(by_id),
        "job",
        page=PAGE,
        format_func=lambda i: f"{i}: {by_id[i].title}",
    )
    job_details(by_id[choice])


st.title("Jobs")
st.caption(
    "Captures, SAE trainings and batch runs run here as background jobs: leave or reload the "
    "page and they go on. Each lives in `jobs/ID/` of the runs directory (job.json, log.txt, "
    f"exit.json). Runs directory: `{root}`"
)
st.caption(limit_text())
st.subheader("Start a job")
capture_tab, sae_tab, batch_tab = st.tabs(["Capture", "SAE training", "Batch spec"])
with capture_tab:
    capture_form()
with sae_tab:
    sae_form()
with batch_tab:
    batch_form()

st.subheader("Jobs")
active = any(job.active for job in list_jobs(root))
st.fragment(run_every=REFRESH_S if active else IDLE_REFRESH_S)(job_list)(active)
