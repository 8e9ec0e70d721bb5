"""Jobs page: start the heavy work (a capture into a store, an SAE training, a batch spec, and
whatever other job an analysis family declares) as a job, and follow it: status (with its place
while it waits in the queue), progress, elapsed time, the log's tail, cancel, a link to the page
where its output shows up, and delete a finished job's folder (one, or all finished ones at
once; never their output).

Each tab's form is drawn from its job kind's schema (`workbench.analysis.plugins.JobKind`, found
through entry points): a field that others follow (a model, a store) comes before the form, so
that their choices and defaults follow it; the rest inside, the secondary ones folded away.

A job is a process of its own (`workbench_app.services.jobs`), not part of a page run: the page
stays responsive, and a job goes on through a reload or an app restart. Only the job list
refreshes itself (a fragment: every 2 s while a job is active, every 10 s otherwise, so that
jobs started elsewhere show up). The selected job lives in the URL. At most `max_jobs()` jobs
run at once ($WORKBENCH_MAX_JOBS, default 1); the others start in turn, first in, first out.
"""

from __future__ import annotations

import shlex
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from workbench.analysis.plugins import JobField, JobKind
from workbench.errors import InputError
from workbench_app.lib.links import page_file, page_link
from workbench_app.lib.pickers import stop_if_empty
from workbench_app.lib.state import state_key, url_selectbox
from workbench_app.services.jobs import (
    Job,
    RunsView,
    cancel_job,
    delete_finished_jobs,
    delete_job,
    elapsed_text,
    field_options,
    field_widget,
    form_fields,
    form_layout,
    job_kinds,
    job_table,
    limit_text,
    list_jobs,
    log_tail,
    one_of_start,
    output_target,
    start_job,
)
from workbench_app.services.runsdir import runs_root

st.set_page_config(page_title="Workbench: jobs", layout="wide")
root = runs_root()
runs_view = RunsView(root)  # the runs directory as the forms read it, once per render
PAGE = "jobs"  # namespaces its widgets' session state (shared by every page of the app)
REFRESH_S = 2.0  # the job list's refresh while a job is active
IDLE_REFRESH_S = 10.0  # and while none is (to notice jobs started elsewhere)
FLASH = f"{PAGE}-flash"  # the outcome of a delete, shown on the next run


def started(job: Job) -> None:
    """Select the new job in the list (drawn below, later in this run) and in the URL."""
    st.session_state[state_key(PAGE, "job")] = job.id
    st.query_params["job"] = job.id
    st.success(f"Started job `{job.id}`: {job.title}. Follow it in the list below.")


def start(kind: JobKind, fields: dict[str, Any]) -> None:
    try:
        job = start_job(kind.name, root=root, **fields)
    except InputError as exc:
        st.error(str(exc))
    else:
        started(job)


def delete_one(job_id: str) -> None:
    """The Delete button's callback (it runs before the page redraws the list)."""
    try:
        delete_job(job_id, root)
    except InputError as exc:  # it started meanwhile, or is gone
        st.session_state[FLASH] = ("warning", str(exc))
    else:
        st.session_state[FLASH] = ("success", f"Deleted job {job_id} (its output stays).")


def delete_finished() -> None:
    n = len(delete_finished_jobs(root))
    st.session_state[FLASH] = (
        "success",
        f"Deleted {n} finished job{'s' if n != 1 else ''} (their outputs stay).",
    )


def draw(kind: JobKind, f: JobField, values: dict[str, Any], where: Any = st) -> Any:
    """Field `f`'s widget in `where`; its value."""
    widget = field_widget(kind, f, values, root, PAGE, runs_view)
    if widget.note:
        where.info(widget.note)
    return getattr(where, widget.widget)(**widget.args)


def job_form(kind: JobKind) -> None:
    """The form of `kind`, drawn from its schema (`form_layout`)."""
    layout, values = form_layout(kind), {}
    for f in layout.before:
        if field_options(f, values, root, runs_view).choices == [] and f.empty:
            st.info(f.empty)  # nothing to start from yet
            return
        values[f.name] = draw(kind, f, values)
    chosen = ""
    if kind.one_of:
        chosen = st.radio(
            "Start from",
            kind.one_of,
            index=one_of_start(kind, values, root, runs_view),
            format_func=lambda name: kind.get_field(name).label or name,
            key=f"{PAGE}-{kind.name}-one-of",
        )
    with st.form(f"{PAGE}-{kind.name}-form"):
        if chosen:
            values[chosen] = draw(kind, kind.get_field(chosen), values)
        columns = st.columns(layout.columns)
        for i, f in enumerate(layout.main):
            values[f.name] = draw(kind, f, values, columns[i % layout.columns])
        if layout.more:
            with st.expander("More settings"):
                for column, f in zip(st.columns(len(layout.more)), layout.more, strict=True):
                    values[f.name] = draw(kind, f, values, column)
        if kind.summary:
            st.caption(kind.summary)
        if st.form_submit_button(f"Start {kind.label}", type="primary"):
            start(kind, form_fields(kind, values, chosen))


def output_link(job: Job) -> None:
    target = output_target(job, root)
    if target is None:
        st.caption(f"Output: `{job.out}` (inside the runs directory)")
        return
    page, params = target
    title = page.replace("_", " ")
    try:
        st.page_link(page_file(page), label=f"Open in {title}", query_params=params)
    except StreamlitAPIException:  # this page run on its own (no page registry): a plain link
        value = next(iter(params.values()))
        st.markdown(f"Output: [{title}: `{value}`]({page_link(page, **params)})")


def job_details(job: Job) -> None:
    st.markdown(f"**{job.title}**: {job.label}, {elapsed_text(job)}")
    if job.progress is not None:
        st.progress(min(max(job.progress, 0.0), 1.0), text=job.progress_text)
    elif job.state == "queued" and job.pid is not None:
        st.caption(
            "Waiting for its turn: it starts when fewer jobs than the limit run ahead of it "
            f"({job.label})."
        )
    elif job.active:
        st.caption("Starting (no progress reported yet)...")
    if (
        job.active
        and not job.cancel_requested
        and st.button("Cancel", key=f"{PAGE}-cancel-{job.id}")
    ):
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
        st.info("No jobs yet. Start one above.")
        return
    if any(job.active for job in jobs) != was_active:
        st.rerun()  # a job started elsewhere, or the last one ended: refresh at the other pace
    st.dataframe(
        job_table(jobs),
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
        "Job", list(by_id), "job", page=PAGE, format_func=lambda i: f"{i}: {by_id[i].title}"
    )
    job_details(by_id[choice])


st.title("Jobs")
kinds = list(job_kinds().values())
st.caption(
    f"Jobs ({', '.join(kind.label for kind in kinds)}) run in the background: leave or reload "
    "the page and they go on. Each lives in `jobs/ID/` of the runs directory (job.json, "
    f"log.txt, exit.json). Runs directory: `{root}`"
)
st.caption(limit_text())
stop_if_empty(root, stop=False)  # a capture started below fills it too
st.subheader("Start a job")
for tab, kind in zip(
    st.tabs([k.label[:1].upper() + k.label[1:] for k in kinds]), kinds, strict=True
):
    with tab:
        job_form(kind)

st.subheader("Jobs")
active = any(job.active for job in list_jobs(root))
st.fragment(run_every=REFRESH_S if active else IDLE_REFRESH_S)(job_list)(active)
