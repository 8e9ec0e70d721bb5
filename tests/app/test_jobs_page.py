"""The Jobs page (AppTest): a capture started from its form becomes a real job that the list
shows and selects in the URL; a fresh session (a reload) finds it again, running or done, with
the link to its store; bad fields show the error and start nothing; the cancel button stops a
job; a queued job shows its place, and the delete buttons remove finished jobs' folders only. In headless Chromium, the list follows a running job to its end without a reload, and its
link opens the store on the Explore page. Jobs run on the quick toy-lm."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from app_browser import browser_page, full_page_screenshot, needs_chromium, serve, shots_dir
from fake_plugins import declarations
from streamlit.testing.v1 import AppTest

from workbench.analysis.plugins import JobField, JobKind
from workbench.zoo import ZOO_ENV
from workbench_app.services import jobs

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "13_Jobs.py")
WAIT_S = 240.0
SITE = "blocks.0.hook_resid_post"


@pytest.fixture
def runs(runs_dir, quick_zoo, monkeypatch):
    """The app's runs directory, with the quick zoo for the jobs; active jobs stopped after."""
    monkeypatch.setenv(ZOO_ENV, str(quick_zoo))
    yield runs_dir
    for job in jobs.list_jobs(runs_dir):
        if job.active:
            jobs.cancel_job(job.id, runs_dir)
            jobs.wait_job(job.id, runs_dir, timeout_s=60)


def page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, at.exception
    return at


def fill_capture(at: AppTest, sites: str, n_examples: int) -> AppTest:
    at.selectbox(key="jobs-capture-model").set_value("toy-lm").run()
    at.text_input(key="jobs-capture-sites-toy-lm").set_value(sites)
    at.number_input(key="jobs-capture-n_examples").set_value(n_examples)
    at.number_input(key="jobs-capture-batch_size").set_value(4)
    next(b for b in at.button if b.label == "Start capture").click().run()
    assert not at.exception, at.exception
    return at


def text_of(at: AppTest) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption, *at.code])


@pytest.mark.slow
def test_start_from_the_form_then_reload(runs):
    at = page()
    assert "No jobs yet" in at.info[-1].value
    fill_capture(at, "blocks.0.hook_resid_post", 8)
    (job,) = jobs.list_jobs(runs)
    assert job.kind == "capture" and job.out == "stores/toy-lm-grammar-lm"
    assert job.id in at.success[0].value
    assert at.query_params["job"] == job.id
    assert at.dataframe[0].value["job"].tolist() == [job.id]
    assert at.selectbox(key="url-jobs-job").value == job.id

    reloaded = page({"job": job.id})  # a fresh session: the job is found from its files
    assert reloaded.selectbox(key="url-jobs-job").value == job.id
    assert f"**{job.title}**" in text_of(reloaded)

    job = jobs.wait_job(job.id, runs, timeout_s=WAIT_S)
    assert job.state == "done", jobs.log_tail(job)
    done = page({"job": job.id})
    assert done.dataframe[0].value["status"].tolist() == ["done"]
    assert done.dataframe[0].value["progress"].tolist() == [1.0]
    shown = text_of(done)
    assert "Explore?store=stores/toy-lm-grammar-lm" in shown  # where its store shows up
    assert "stored" in shown and "from 8 examples" in shown  # the log's tail
    assert not [b for b in done.button if b.label == "Cancel"]


def test_bad_fields_show_the_error_and_start_nothing(runs):
    at = fill_capture(page(), "blocks.0; rm -rf ~", 8)
    assert "sites 'blocks.0; rm -rf ~'" in at.error[0].value
    assert jobs.list_jobs(runs) == []


@pytest.mark.slow
def test_the_cancel_button_stops_a_job(runs):
    at = fill_capture(page(), "blocks.*.hook_resid_post", 20_000)
    (job,) = jobs.list_jobs(runs)
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.exception, at.exception
    job = jobs.wait_job(job.id, runs, timeout_s=60)
    assert job.state == "cancelled"
    assert page({"job": job.id}).dataframe[0].value["status"].tolist() == ["cancelled"]


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_the_list_follows_jobs_without_a_reload(runs, tmp_path):
    """A finished capture's link opens its store on the Explore page; a running one's progress
    moves and its cancel takes effect, all in one page load (the fragment's own refreshes)."""
    short = jobs.start_capture(
        model="toy-lm", dataset="grammar-lm", sites=SITE, n_examples=8, out="stores/short"
    )
    assert jobs.wait_job(short.id, runs, timeout_s=WAIT_S).state == "done"
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page() as tab:
        tab.goto(f"{url}/Jobs?job={short.id}")
        main = tab.locator('[data-testid="stMain"]')
        main.get_by_role("link", name="Open in Explore").click()
        tab.wait_for_url("**/Explore?store=stores%2Fshort**", timeout=30_000)
        tab.get_by_text("stores/short").first.wait_for(timeout=60_000)

        long = jobs.start_capture(
            model="toy-lm",
            dataset="grammar-lm",
            sites=SITE,
            n_examples=20_000,
            batch_size=1,
            out="stores/long",
        )
        deadline = time.monotonic() + WAIT_S
        while not jobs.read_job(long.id, runs).progress:  # capturing, not starting
            assert time.monotonic() < deadline, jobs.log_tail(jobs.read_job(long.id, runs))
            time.sleep(0.3)
        tab.goto(f"{url}/Jobs?job={long.id}")
        main = tab.locator('[data-testid="stMain"]')
        main.get_by_text(f"{long.title}: running").wait_for(timeout=60_000)
        tab.evaluate("() => { window.notReloaded = true; }")
        bar = main.get_by_text(re.compile(r"^\d+/20000 examples$"))
        first = bar.inner_text(timeout=30_000)
        tab.wait_for_function(  # the fragment redraws the progress as the capture goes on
            "([first]) => [...document.querySelectorAll('[data-testid=stMain] p')]"
            ".some(p => /^\\d+\\/20000 examples$/.test(p.innerText) && p.innerText !== first)",
            arg=[first],
            timeout=60_000,
        )
        main.get_by_role("button", name="Cancel").click()
        main.get_by_text(f"{long.title}: cancelled").wait_for(timeout=60_000)
        full_page_screenshot(tab, shots_dir(tmp_path) / "page-jobs.png")
        assert tab.evaluate("() => window.notReloaded === true")
        assert tab.locator('[data-testid="stException"]').count() == 0
    assert jobs.read_job(long.id, runs).state == "cancelled"


def write_job(runs: Path, i: int, pid: int | None = None, **files: dict) -> Path:
    """The folder of a capture job as its runner leaves it (`files`: name -> JSON payload)."""
    folder = runs / "jobs" / f"20260101-00000{i}-capture-000{i}"
    folder.mkdir(parents=True)
    created = time.time() - 30 + i
    pid_created = None if pid is None else psutil.Process(pid).create_time()
    record = {"id": folder.name, "kind": "capture", "title": f"capture {i}",
              "commands": [["true"]], "cwd": str(folder), "out": f"stores/s{i}", "fields": {},
              "created": created, "pid": pid, "pid_created": pid_created}  # fmt: skip
    (folder / "job.json").write_text(json.dumps(record))
    for name, payload in files.items():
        (folder / f"{name}.json").write_text(json.dumps(payload))
    return folder


def test_queue_place_and_the_delete_buttons(runs_dir, monkeypatch):
    runs = runs_dir
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = time.time()
        done = write_job(runs, 0, exit={"exit_code": 0, "finished": now, "started": now - 3})
        failed = write_job(runs, 1, exit={"exit_code": 2, "finished": now, "started": now - 1})
        queued = write_job(runs, 2, runner.pid, queue={"place": 2})  # its runner waits
        (runs / "stores" / "s0").mkdir(parents=True)  # the done job's output
        (runs / "stores" / "s0" / "manifest.json").write_text("{}")

        at = page({"job": done.name})
        assert "At most 1 job runs at once" in text_of(at)
        table = at.dataframe[0].value
        assert table["status"].tolist() == ["queued (2nd)", "failed", "done"]
        assert table["elapsed"].tolist()[0].startswith("waiting ")
        assert table["elapsed"].tolist()[1:] == ["1 s", "3 s"]
        at.button(key=f"jobs-delete-{done.name}").click().run()
        assert not at.exception, at.exception
        assert f"Deleted job {done.name} (its output stays)" in at.success[0].value
        assert not done.exists() and (runs / "stores" / "s0" / "manifest.json").is_file()
        assert at.dataframe[0].value["job"].tolist() == [queued.name, failed.name]

        at.selectbox(key="url-jobs-job").set_value(queued.name).run()
        delete = at.button(key=f"jobs-delete-{queued.name}")
        assert delete.disabled and "Cancel it first" in delete.help
        assert "Waiting for its turn" in text_of(at)
        at.button(key="jobs-delete-finished").click().run()
        assert not at.exception, at.exception
        assert "Deleted 1 finished job (their outputs stay)" in at.success[0].value
        assert not failed.exists() and queued.is_dir()
        assert [j.id for j in jobs.list_jobs(runs)] == [queued.name]
        assert at.button(key="jobs-delete-finished").disabled
    finally:
        runner.kill()
        runner.wait()


def echo_commands(values) -> list[list[str]]:
    return [["--help"]]


ECHO = JobKind(
    "echo",
    "echo run",
    (
        JobField("words", "str", "hi", label="Words"),
        JobField("times", "int", 2, minimum=1, maximum=9, label="Times", place="more"),
        JobField("out", "folder", "echo/{words}", label="Folder"),
    ),
    echo_commands,
    title="echo {words} x{times}",
    output_page="Explore",
    output_param="store",
    summary="Prints the workbench's help.",
    order=95,
)


@pytest.fixture
def declare(monkeypatch):
    yield from declarations(monkeypatch)


def test_every_declared_kind_gets_a_form_from_its_schema(runs, declare):
    """The tabs are the declared job kinds, in order; a kind a family declares (faked here)
    gets its form and starts from it, with nothing in the app naming it."""
    declare("workbench.jobs", "echo", ECHO)
    at = page()
    assert [t.label for t in at.tabs] == ["Capture", "SAE training", "Batch run", "Echo run"]
    assert "is empty" in at.info[0].value  # the runs dir: `workbench demo` fills it
    assert "No complete store under the runs directory yet" in at.info[1].value  # SAE: no store
    assert at.radio(key="jobs-batch-one-of").value == "spec_text"  # no spec file: paste YAML
    assert at.text_area(key="jobs-batch-spec_text").value.startswith("name: toy-lm-anisotropy")
    assert at.number_input(key="jobs-echo-times").value == 2
    assert at.text_input(key="jobs-echo-out").placeholder == "echo/WORDS"
    assert "Prints the workbench's help." in text_of(at)
    at.text_input(key="jobs-echo-words").set_value("yo")
    at.number_input(key="jobs-echo-times").set_value(3)
    next(b for b in at.button if b.label == "Start echo run").click().run()
    assert not at.exception, at.exception
    (job,) = jobs.list_jobs(runs)
    assert (job.kind, job.title, job.out) == ("echo", "echo yo x3", "echo/yo")
    assert job.commands == [[sys.executable, "-m", "workbench", "--help"]]
    assert at.query_params["job"] == job.id


def test_the_sae_form_builds_the_training_and_features_commands(toy_store, monkeypatch):
    """The SAE tab (drawn from the SAE family's declared schema) starts the same two commands
    as before: the site defaults to the store's last, the folder to sae/STORE-SITE."""
    launched: list[list[list[str]]] = []

    def record(root, job_id, kind, title, commands, out_dir, fields, files=None):
        launched.append(commands)
        return jobs.Job(job_id, kind, title, root / "jobs" / job_id, str(out_dir), commands,
                        0.0, None, "queued")  # fmt: skip

    monkeypatch.setattr(jobs, "launch", record)
    at = page()
    assert at.selectbox(key="jobs-sae-store").value == toy_store.relative
    site = at.selectbox(key=f"jobs-sae-site-{toy_store.relative}")
    assert site.value == toy_store.sites[-1]
    at.selectbox(key="jobs-sae-arch").set_value("relu")
    at.number_input(key="jobs-sae-steps").set_value(40)
    next(b for b in at.button if b.label == "Start SAE training").click().run()
    assert not at.exception, at.exception
    root, last = toy_store.path.parent.parent, toy_store.sites[-1]
    store, out = root / toy_store.relative, root / "sae" / f"toy-{last}"
    py = [sys.executable, "-m", "workbench"]
    assert launched == [[
        [*py, "sae", "train", f"--store={store}", f"--site={last}", f"--out={out}", "--arch=relu",
         "--seed=0", "--steps=40"],
        [*py, "sae", "features", f"--sae={out}", f"--store={store}", f"--site={last}",
         f"--out={out}/features", "--html=none"],
    ]]  # fmt: skip
