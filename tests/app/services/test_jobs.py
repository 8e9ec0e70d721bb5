"""Jobs (`workbench_app.services.jobs`): real detached processes running the workbench's own commands on the
quick toy-lm, their state, progress and exit read back from their folders; validation of every
field; the progress parsers against the commands' real output formats."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from fake_plugins import declarations
from tqdm import tqdm

from analyses.sae.report import SAE_JOB
from workbench.analysis.plugins import JobField, JobKind
from workbench.errors import InputError
from workbench.store import ActivationStore, StoreWriter
from workbench.zoo import ZOO_ENV
from workbench_app.services import job_runner, job_state, jobs
from workbench_app.services.job_progress import job_progress
from workbench_app.services.runsdir import RUNS_ENV

SITE = "blocks.1.hook_resid_post"
WAIT_S = 240.0  # the machine may be busy: a job's python starts in seconds, not milliseconds


def stop_all(root: Path) -> None:
    """Cancel the jobs still active under `root` and wait for them (no stray processes)."""
    for job in jobs.list_jobs(root):
        if job.active:
            jobs.cancel_job(job.id, root)
            jobs.wait_job(job.id, root, timeout_s=60)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, quick_zoo):
    """A runs directory (and the quick zoo) that the module's jobs inherit through the env."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RUNS_ENV, str(root))
        patch.setenv(ZOO_ENV, str(quick_zoo))
        yield root
        stop_all(root)


@pytest.fixture(scope="module")
def captured(runs) -> str:
    """The id of a capture job started by another process (an app server) that is killed at
    once: 16 examples of grammar-lm through toy-lm into stores/toy."""
    start = (
        "import sys, time\n"
        "from workbench_app.services.jobs import start_capture\n"
        "job = start_capture(model='toy-lm', dataset='grammar-lm', n_examples=16, batch_size=4,"
        " sites='blocks.*.hook_resid_post', out='stores/toy')\n"
        "print(job.id, flush=True)\n"
        "time.sleep(600)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", start], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert server.stdout is not None
    job_id = server.stdout.readline().strip()
    os.killpg(server.pid, signal.SIGKILL)  # the server and its whole process group die
    server.wait()
    assert job_id, "the server process did not start a job"
    return job_id


@pytest.mark.slow
def test_a_job_outlives_the_server_that_started_it(runs, captured):
    job = jobs.read_job(captured, runs)  # found from the files alone, in a fresh process
    assert job.kind == "capture" and job.state in ("queued", "running", "done")
    assert captured in [j.id for j in jobs.list_jobs(runs)]
    job = jobs.wait_job(captured, runs, timeout_s=WAIT_S)
    assert job.state == "done" and job.exit_code == 0, jobs.log_tail(job)
    assert job.progress == 1.0 and job.progress_text == "16/16 examples"
    assert job.finished is not None and 0 < job.elapsed_s() < WAIT_S
    store = ActivationStore(runs / "stores" / "toy")  # complete, or this raises
    assert store.n_examples == 16 and SITE in store.sites
    record = json.loads((job.folder / "job.json").read_text())
    (argv,) = record["commands"]
    assert argv[1:4] == ["-m", "workbench", "capture"] and "--n-examples=16" in argv
    assert record["out"] == "stores/toy" and isinstance(record["pid"], int)
    ended = json.loads((job.folder / "exit.json").read_text())
    assert ended["exit_code"] == 0 and ended["cancelled"] is False
    assert "stored" in jobs.log_tail(job) and "from 16 examples" in jobs.log_tail(job)


@pytest.mark.slow
def test_sae_job_trains_then_writes_features(runs, captured):
    jobs.wait_job(captured, runs, timeout_s=WAIT_S)
    job = jobs.start_job(
        "sae", store="stores/toy", site=SITE, out="sae/toy", steps=40, batch_size=64, k=4, d_sae=64
    )
    assert job.kind == "sae" and len(job.commands) == 2
    job = jobs.wait_job(job.id, runs, timeout_s=WAIT_S)
    assert job.state == "done", jobs.log_tail(job)
    assert job.progress == 1.0 and job.progress_text == "step 40/40"
    assert (runs / "sae" / "toy" / "sae.safetensors").is_file()
    assert (runs / "sae" / "toy" / "features" / "features.json").is_file()
    with pytest.raises(InputError, match="already holds a trained SAE"):
        jobs.start_job("sae", store="stores/toy", site=SITE, out="sae/toy")


@pytest.mark.slow
def test_batch_job_from_pasted_yaml(runs):
    spec = {
        "name": "toy-job",
        "device": "cpu",
        "models": [{"model": "toy-lm", "steps": [0, "last"]}],
        "datasets": [{"dataset": "grammar-lm", "n_examples": 12, "max_length": 16}],
        "sites": ["blocks.0.hook_resid_post", SITE],
        "analyses": [{"analysis": "anisotropy", "params": {"n_pairs": 200}}],
    }
    job = jobs.start_batch(spec_text=yaml.safe_dump(spec))
    assert (job.folder / "spec.yaml").read_text() == yaml.safe_dump(spec)
    assert job.out == "batch/toy-job"
    job = jobs.wait_job(job.id, runs, timeout_s=WAIT_S)
    assert job.state == "done", jobs.log_tail(job)
    assert job.progress == 1.0 and job.progress_text == "4/4 cells, 2/2 captures"
    assert (runs / "batch" / "toy-job" / "results.parquet").is_file()


@pytest.mark.slow
def test_a_failing_job_reads_failed_with_its_log(runs):
    job = jobs.start_capture(
        model="toy-lm", dataset="grammar-lm", sites="blocks.*.hook_nowhere", out="stores/bad"
    )
    job = jobs.wait_job(job.id, runs, timeout_s=WAIT_S)
    assert job.state == "failed" and job.label == "failed" and not job.lost
    assert job.exit_code == 2  # the CLI's exit code for a WorkbenchError
    tail = jobs.log_tail(job)
    assert "workbench capture: error:" in tail and "hook_nowhere" in tail


@pytest.mark.slow
def test_cancel_a_long_running_job(runs):
    job = jobs.start_capture(
        model="toy-lm",
        dataset="grammar-lm",
        sites="blocks.*.hook_resid_post",
        n_examples=20_000,
        batch_size=1,
        out="stores/long",
    )
    deadline = time.monotonic() + WAIT_S
    while not job.progress:  # cancel it once it is capturing, not while it starts
        assert job.active and time.monotonic() < deadline, jobs.log_tail(job)
        time.sleep(0.3)
        job = jobs.read_job(job.id, runs)
    with pytest.raises(InputError, match="writing to 'stores/long'"):
        jobs.start_capture(
            model="toy-lm", dataset="grammar-lm", sites=SITE, out="stores/long/inner"
        )
    job = jobs.cancel_job(job.id, runs)
    assert job.cancel_requested
    job = jobs.wait_job(job.id, runs, timeout_s=60)
    assert job.state == "cancelled" and job.exit_code != 0
    assert json.loads((job.folder / "exit.json").read_text())["cancelled"] is True
    assert gone(job.pid, runs)
    assert 0 < job.progress < 1  # type: ignore[operator]
    manifest = json.loads((runs / "stores" / "long" / "manifest.json").read_text())
    assert manifest["complete"] is False  # an interrupted store never reads as complete
    with pytest.raises(InputError, match="only a queued or running job"):
        jobs.cancel_job(job.id, runs)


def gone(pid: int | None, root: Path, timeout_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (a zombie counts as ended) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs.list_jobs(root)  # reaps the runners this process started
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


# -- state from the files, without real jobs -------------------------------------------------


def fake_job(root: Path, job_id: str, pid: int | None, **files: dict) -> Path:
    folder = root / "jobs" / job_id
    folder.mkdir(parents=True)
    record = {
        "id": job_id,
        "kind": "capture",
        "title": "fake",
        "commands": [["true"]],
        "cwd": str(folder),
        "out": "stores/x",
        "fields": {},
        "created": time.time() - 5,
        "pid": pid,
        "pid_created": None,
    }
    (folder / "job.json").write_text(json.dumps(record))
    for name, payload in files.items():
        (folder / f"{name}.json").write_text(json.dumps(payload))
    return folder


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_state_from_the_files(tmp_path):
    ids = [f"20250101-00000{i}-capture-000{i}" for i in range(7)]
    fake_job(tmp_path, ids[0], dead_pid())  # no exit record, runner gone
    fake_job(tmp_path, ids[1], dead_pid(), cancel={"requested": 1.0})
    fake_job(tmp_path, ids[2], None)
    fake_job(tmp_path, ids[3], dead_pid(), exit={"exit_code": 0, "finished": time.time()})
    fake_job(tmp_path, ids[4], dead_pid(), exit={"exit_code": 1, "finished": time.time()})
    fake_job(tmp_path, ids[5], 1, exit={"exit_code": -15, "finished": 1.0, "cancelled": True})
    reused = fake_job(tmp_path, ids[6], os.getpid())  # a live pid, but not the job's runner
    record = json.loads((reused / "job.json").read_text())
    (reused / "job.json").write_text(json.dumps({**record, "pid_created": 12345.0}))
    (tmp_path / "jobs" / "not-a-job").mkdir()
    listed = {job.id: job for job in jobs.list_jobs(tmp_path)}
    assert list(listed) == ids[::-1]  # newest first
    labels = [listed[i].label for i in ids]
    assert labels == [
        "failed (lost)",
        "cancelled",
        "queued",
        "done",
        "failed",
        "cancelled",
        "failed (lost)",
    ]
    assert listed[ids[0]].lost and listed[ids[0]].exit_code is None
    assert listed[ids[2]].active and listed[ids[2]].progress is None


def test_read_job_refuses_unknown_and_malformed_ids(tmp_path):
    for bad in ["../../etc", "20250101-000000-capture-0000", ""]:
        with pytest.raises(InputError, match="no job"):
            jobs.read_job(bad, tmp_path)


# -- validation: nothing starts, the error names the value -----------------------------------


@pytest.fixture
def empty_runs(tmp_path, monkeypatch):
    """A runs directory in which no job may be started."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv(RUNS_ENV, str(root))
    yield root
    assert not (root / "jobs").exists() or not any((root / "jobs").iterdir())


CAPTURE = {"model": "toy-lm", "dataset": "grammar-lm", "sites": SITE, "out": "stores/x"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "toy-llm", "model 'toy-llm' is not a zoo model.*closest: toy-lm"),
        ("model", "minilm@3", "model 'minilm@3'"),
        ("model", "toy-lm@soon", "model 'toy-lm@soon'"),
        ("model", "/etc", "model '/etc'"),
        ("dataset", "grammar", "dataset 'grammar' is not one of.*grammar-lm"),
        ("sites", "blocks.0; rm -rf ~", "sites 'blocks.0; rm -rf ~'"),
        ("sites", " , ", "sites ' , '"),
        ("sites", "--help", "sites '--help'"),
        ("n_examples", 0, r"n_examples must be an integer in 1\.\.10000000, got 0"),
        ("batch_size", "8", r"batch_size must be an integer in 1\.\.4096, got '8'"),
        ("positions", "1:x", "bad positions '1:x'"),
        ("store_dtype", "int8", "store_dtype 'int8'.*float16"),
        ("device", "tpu", "device 'tpu'.*cuda"),
        ("out", "../elsewhere", "out '../elsewhere' must be a folder inside the runs directory"),
        ("out", "/tmp/abs", "out '/tmp/abs' must be a folder inside"),
        ("out", "", "out '' must be a folder inside"),
        ("out", ".", "out '.' must be a folder inside"),
        ("out", "jobs/x", "out 'jobs/x' lies in jobs/"),
    ],
)
def test_capture_fields_are_validated(empty_runs, field, value, message):
    with pytest.raises(InputError, match=message):
        jobs.start_capture(**{**CAPTURE, field: value})


def small_store(folder: Path) -> None:
    """A complete store of 4 rows of width 3 at SITE."""
    spec = {"model": "m", "dataset": "d", "sites": [SITE], "dtype": "float32"}
    writer = StoreWriter(folder, spec)
    writer.append(
        {SITE: np.zeros((4, 3), dtype=np.float32)},
        token_ids=np.arange(4),
        example_index=np.array([0, 0, 1, 1]),
        position=np.array([0, 1, 0, 1]),
        example_stop=2,
    )
    writer.finalize()


def test_sae_fields_are_validated(empty_runs):
    with pytest.raises(InputError, match="store 'stores/none' is not one of .*there are none"):
        jobs.start_job("sae", store="stores/none", site=SITE, out="sae/x")
    small_store(empty_runs / "stores" / "s")
    good = {"store": "stores/s", "site": SITE, "out": "sae/x"}
    for field, value, message in [
        ("site", "blocks.9.hook_resid_post", "site 'blocks.9.hook_resid_post'.*" + SITE),
        ("arch", "gated", "arch 'gated'.*topk"),
        ("steps", -1, "steps must be an integer"),
        ("k", 1.5, "k must be an integer"),
        ("lr", 0.0, r"lr must be a number in \(0, 1\], got 0.0"),
        ("out", "stores/s/sae", "lies inside the store 'stores/s'"),
        ("out", "../../x", "must be a folder inside the runs directory"),
    ]:
        with pytest.raises(InputError, match=message):
            jobs.start_job("sae", **{**good, field: value})


def test_batch_specs_are_validated(empty_runs):
    outside = empty_runs.parent / "outside.yaml"
    outside.write_text("name: x\n")
    with pytest.raises(InputError, match="'../outside.yaml' must be a .yaml file inside"):
        jobs.start_batch(spec="../outside.yaml")
    with pytest.raises(InputError, match="missing.yaml' is not a file"):
        jobs.start_batch(spec="missing.yaml")
    with pytest.raises(InputError, match="not both"):
        jobs.start_batch()
    with pytest.raises(InputError, match="pasted spec:.*missing 'analyses'"):
        jobs.start_batch(spec_text="models: [toy-lm]\ndatasets: [text]\nsites: [x]\n")
    spec = {
        "models": ["toy-lm"],
        "datasets": ["text"],
        "sites": [SITE],
        "analyses": ["anisotropy"],
        "stores": "/tmp/elsewhere",
    }
    with pytest.raises(InputError, match="stores '/tmp/elsewhere' lie outside"):
        jobs.start_batch(spec_text=yaml.safe_dump(spec))
    (empty_runs / "specs").mkdir()
    (empty_runs / "specs" / "s.yaml").write_text(yaml.safe_dump({**spec, "stores": None}))
    assert jobs.batch_specs(empty_runs) == ["specs/s.yaml"]
    with pytest.raises(InputError, match="out '../x' must be a folder inside"):
        jobs.start_batch(spec="specs/s.yaml", out="../x")
    with pytest.raises(InputError, match=r"workers must be an integer in 1\.\."):
        jobs.start_batch(spec="specs/s.yaml", workers=0)


# -- progress from the commands' real output formats -----------------------------------------


def tqdm_text(desc: str, total: int, done: int, unit: str) -> str:
    """What tqdm writes to a log file (not a terminal), as `workbench.store.capture` sets it up."""
    out = io.StringIO()
    bar = tqdm(total=total, unit=unit, desc=desc, file=out, mininterval=0)
    for _ in range(done):
        bar.update(1)
    return out.getvalue()


def test_capture_progress_reads_the_last_capture_bar():
    assert jobs.capture_progress("no bar yet\n") is None
    log = tqdm_text("Loading weights", 52, 52, "it") + "\n" + tqdm_text("capture", 40, 30, "ex")
    assert jobs.capture_progress(log) == (0.75, "30/40 examples")
    log += "\n" + tqdm_text("Loading weights", 10, 1, "it")  # another bar after it: ignored
    assert jobs.capture_progress(log) == (0.75, "30/40 examples")


def test_batch_progress_counts_captures_and_cells():
    head = "batch toy: 2 captures, 4 cells -> /r/batch/toy\n0 of 4 cells already done\n"
    assert jobs.batch_progress("Loading weights\n") is None
    assert jobs.batch_progress(head) == (0.0, "0/4 cells")
    log = head + "[capture 1/2] toy-lm@0 text: captured (1.0 s)\n"
    assert jobs.batch_progress(log) == (1 / 6, "0/4 cells, 1/2 captures")
    log += "[capture 2/2] toy-lm@30 text: FAILED InputError: x (0.5 s)\n"
    log += "[cell] anisotropy toy-lm@30 text blocks.0.x: FAILED (its capture failed)\n"
    log += "[cell 1/3] anisotropy toy-lm@0 text blocks.0.x: done (0.03 s)\n"
    assert jobs.batch_progress(log) == (4 / 6, "2/4 cells, 2/2 captures")
    resumed = (
        "batch toy: 2 captures, 4 cells -> /r\n3 of 4 cells already done\n[cell 1/1] a: done\n"
    )
    assert jobs.batch_progress(resumed) == (1.0, "4/4 cells")
    ended = head + "done 0, failed 4, pending 0 of 4 cells in 1.6 s; results: x\n"
    assert jobs.batch_progress(ended)[0] == 1.0  # type: ignore[index]


def test_log_tail_shows_what_a_terminal_shows(tmp_path):
    folder = fake_job(tmp_path, "20250101-000000-capture-0000", None)
    bar = tqdm_text("capture", 4, 4, "ex")
    (folder / "log.txt").write_text("$ workbench capture\n" + bar + "\nstored 4 rows\n\n")
    job = jobs.read_job("20250101-000000-capture-0000", tmp_path)
    lines = jobs.log_tail(job).split("\n")
    assert lines[0] == "$ workbench capture" and lines[-1] == "stored 4 rows"
    assert lines[1].startswith("capture: 100%") and "\r" not in lines[1] and len(lines) == 3
    assert jobs.log_tail(job, max_lines=1) == "stored 4 rows"


# -- the queue: at most max_jobs() run at once, first in, first out --------------------------


def gated_job(root: Path, name: str, gate: Path | None = None) -> jobs.Job:
    """A real job (a real runner, in the queue) whose one command, a bare python, waits for the
    file `gate` to exist (None: ends at once), so that the test decides when it ends."""
    code = "import pathlib, sys, time\nprint('ran', flush=True)\n"
    if gate is not None:
        code += f"while not pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.02)\n"
    argv = [sys.executable, "-I", "-c", code]
    return job_state.launch(root, jobs.new_id("capture"), "capture", name, [argv], root / name, {})


def until(root: Path, job_id: str, check, what: str, timeout_s: float = 60.0) -> jobs.Job:
    """The job once `check(job)` holds (AssertionError naming `what` after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = jobs.read_job(job_id, root)
        if check(job):
            return job
        assert time.monotonic() < deadline, f"{job_id} never {what}: {job.label}\n" + (
            jobs.log_tail(job)
        )
        time.sleep(0.05)


@pytest.fixture
def queue_root(tmp_path, monkeypatch):
    """An empty runs directory, a limit of 1; every job in it ended after the test."""
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    root = tmp_path / "runs"
    root.mkdir()
    yield root
    stop_all(root)


@pytest.mark.slow
def test_the_queue_runs_one_job_at_a_time_in_order(queue_root, tmp_path):
    gate_a, gate_b = tmp_path / "gate-a", tmp_path / "gate-b"
    a = gated_job(queue_root, "a", gate_a)
    b = gated_job(queue_root, "b", gate_b)
    c = gated_job(queue_root, "c")
    assert json.loads((b.folder / "job.json").read_text())["max_jobs"] == 1
    until(queue_root, a.id, lambda j: j.state == "running", "ran")
    b = until(queue_root, b.id, lambda j: j.queue_place == 1, "queued 1st")
    c = until(queue_root, c.id, lambda j: j.queue_place == 2, "queued 2nd")
    assert (b.label, c.label) == ("queued (1st)", "queued (2nd)")
    assert b.active and b.started is None and b.elapsed_s() == 0 and b.progress is None
    assert not (b.folder / "started.json").exists() and "ran" not in jobs.log_tail(b)
    a = jobs.read_job(a.id, queue_root)
    assert a.label == "running" and a.started is not None and a.started >= a.created

    gate_a.touch()  # a ends: b runs, c moves up
    b = until(queue_root, b.id, lambda j: j.state == "running", "ran")
    c = until(queue_root, c.id, lambda j: j.queue_place == 1, "moved up")
    gate_b.touch()
    ended = [jobs.wait_job(j.id, queue_root, timeout_s=60) for j in (a, b, c)]
    assert [j.state for j in ended] == ["done"] * 3
    spans = [(j.started, j.finished) for j in ended]
    assert all(start is not None and end is not None for start, end in spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # type: ignore[operator]  # no two ran at once, in creation order
    a, b, c = ended
    assert 0 < b.elapsed_s() < b.finished - b.created  # type: ignore[operator]  # not the wait
    assert b.waited_s() == pytest.approx(b.started - b.created)  # type: ignore[operator]
    log = (c.folder / "log.txt").read_text()
    assert "place 2 in the queue" in log and "place 1 in the queue" in log
    assert log.index("starting after") < log.index("ran")
    assert not (c.folder / "queue.json").exists()


@pytest.mark.slow
def test_cancelling_a_queued_job_ends_it_before_it_runs(queue_root, tmp_path):
    gate = tmp_path / "gate-a"
    a = gated_job(queue_root, "a", gate)
    b = gated_job(queue_root, "b")
    b = until(queue_root, b.id, lambda j: j.queue_place == 1, "queued")
    b = jobs.cancel_job(b.id, queue_root)
    assert b.label in ("queued (cancelling)", "cancelled")  # the runner ends within POLL_S
    b = jobs.wait_job(b.id, queue_root, timeout_s=30)
    assert b.state == "cancelled" and b.started is None and b.elapsed_s() == 0
    ended = json.loads((b.folder / "exit.json").read_text())
    assert ended["cancelled"] is True and ended["commands_run"] == 0 and ended["started"] is None
    assert not (b.folder / "started.json").exists()
    log = (b.folder / "log.txt").read_text()
    assert "cancelled after" in log and "$ " not in log and "ran" not in log
    assert gone(b.pid, queue_root)
    assert jobs.read_job(a.id, queue_root).state == "running"  # the one ahead goes on
    gate.touch()
    assert jobs.wait_job(a.id, queue_root, timeout_s=30).state == "done"


@pytest.mark.slow
def test_lost_jobs_hold_no_place_in_the_queue(queue_root):
    old = time.time() - 600
    lost = fake_job(queue_root, "20250101-000000-capture-0000", dead_pid())
    never = fake_job(queue_root, "20250101-000001-capture-0001", None)  # launcher died
    reused = fake_job(queue_root, "20250101-000002-capture-0002", os.getpid())
    for folder in (lost, never, reused):
        record = json.loads((folder / "job.json").read_text())
        record.update(created=old, pid_created=old if folder != reused else 12345.0)
        (folder / "job.json").write_text(json.dumps(record))
    (lost / "started.json").write_text(json.dumps({"started": old}))
    assert [j.label for j in jobs.list_jobs(queue_root)] == ["failed (lost)"] * 3
    job = jobs.wait_job(gated_job(queue_root, "after").id, queue_root, timeout_s=60)
    assert job.state == "done", jobs.log_tail(job)
    assert "waiting for its turn" not in jobs.log_tail(job)


@pytest.mark.slow
def test_a_higher_limit_runs_jobs_side_by_side(queue_root, tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "2")
    gate = tmp_path / "gate-a"
    a = gated_job(queue_root, "a", gate)
    b = jobs.wait_job(gated_job(queue_root, "b").id, queue_root, timeout_s=60)
    assert b.state == "done" and "waiting for its turn" not in jobs.log_tail(b)
    assert jobs.read_job(a.id, queue_root).state == "running"  # b ran while a did
    gate.touch()
    assert jobs.wait_job(a.id, queue_root, timeout_s=30).state == "done"


def test_max_jobs_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(jobs.MAX_JOBS_ENV, raising=False)
    assert jobs.max_jobs() == 1
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, " 3 ")
    assert jobs.max_jobs() == 3
    for bad in ["0", "-1", "two", "1.5"]:
        monkeypatch.setenv(jobs.MAX_JOBS_ENV, bad)
        with pytest.raises(InputError, match=f"WORKBENCH_MAX_JOBS='{bad}': give a whole"):
            jobs.max_jobs()
    with pytest.raises(InputError, match="WORKBENCH_MAX_JOBS"):  # nothing starts
        gated_job(tmp_path, "x")
    assert not (tmp_path / "jobs").exists()


def test_queued_and_running_from_the_files(tmp_path):
    """A live runner without started.json waits in the queue (its place from queue.json); with it,
    its commands run. A job from before the queue counts its time from its creation."""
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = fake_job(tmp_path, "20250101-000000-capture-0000", runner.pid)
        record = json.loads((folder / "job.json").read_text())
        record["pid_created"] = psutil.Process(runner.pid).create_time()
        (folder / "job.json").write_text(json.dumps(record))
        job = jobs.read_job(folder.name, tmp_path)
        assert (job.state, job.label, job.queue_place, job.started) == ("queued",) * 2 + (None,) * 2
        (folder / "queue.json").write_text(json.dumps({"place": 3}))
        assert jobs.read_job(folder.name, tmp_path).label == "queued (3rd)"
        (folder / "started.json").write_text(json.dumps({"started": record["created"] + 2}))
        job = jobs.read_job(folder.name, tmp_path)
        assert (job.state, job.queue_place, job.started) == ("running", None, record["created"] + 2)
        assert job.waited_s() == pytest.approx(2.0)
    finally:
        runner.kill()
        runner.wait()
    legacy = fake_job(
        tmp_path, "20250101-000001-capture-0001", 1, exit={"exit_code": 0, "finished": 2e9}
    )
    job = jobs.read_job(legacy.name, tmp_path)
    assert job.started == job.created and job.elapsed_s() == 2e9 - job.created
    assert [job_state.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"
    ]  # fmt: skip


def test_the_runners_liveness_check_agrees_with_psutil():
    """The runner (standard library only) tells a live runner from a dead, zombie or reused pid
    as `job_state` does with psutil."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen(["true"])
    try:
        created = psutil.Process(live.pid).create_time()
        assert job_runner.pid_alive(live.pid, created) and job_runner.pid_alive(live.pid, None)
        assert not job_runner.pid_alive(live.pid, created - 5)  # a reused pid
        assert not job_runner.pid_alive(dead_pid(), None)
        deadline = time.monotonic() + 10
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not job_runner.pid_alive(zombie.pid, None)
        for pid, made in [(live.pid, created), (live.pid, created - 5), (zombie.pid, None)]:
            assert job_runner.pid_alive(pid, made) == job_state._alive(pid, made)
    finally:
        live.kill()
        live.wait()
        zombie.wait()


# -- clean-up: a finished job's folder, never its output -------------------------------------


def test_delete_removes_only_a_finished_jobs_folder(tmp_path):
    done = fake_job(tmp_path, "20250101-000000-capture-0000", None, exit={"exit_code": 0})
    failed = fake_job(tmp_path, "20250101-000001-capture-0001", None, exit={"exit_code": 1})
    cancelled = fake_job(tmp_path, "20250101-000002-capture-0002", dead_pid(), cancel={})
    lost = fake_job(tmp_path, "20250101-000003-capture-0003", dead_pid())
    queued = fake_job(tmp_path, "20250101-000004-capture-0004", None)  # launching
    (tmp_path / "stores" / "x").mkdir(parents=True)  # the jobs' output
    (tmp_path / "stores" / "x" / "manifest.json").write_text("{}")

    with pytest.raises(InputError, match=r"is queued: cancel it first \(only a finished job"):
        jobs.delete_job(queued.name, tmp_path)
    for bad in ["../../stores/x", "..", "", "20250101-000009-capture-0009", "stores"]:
        with pytest.raises(InputError, match="no job"):
            jobs.delete_job(bad, tmp_path)
    assert jobs.delete_job(done.name, tmp_path).state == "done"
    assert not done.exists() and (tmp_path / "stores" / "x" / "manifest.json").is_file()
    with pytest.raises(InputError, match="no job"):  # already gone
        jobs.delete_job(done.name, tmp_path)

    deleted = jobs.delete_finished_jobs(tmp_path)
    assert sorted(deleted) == sorted(f.name for f in (failed, cancelled, lost))
    assert [j.id for j in jobs.list_jobs(tmp_path)] == [queued.name]
    assert (tmp_path / "stores" / "x" / "manifest.json").is_file()
    assert jobs.delete_finished_jobs(tmp_path) == []


@pytest.mark.slow
def test_delete_refuses_a_running_job(queue_root, tmp_path):
    gate = tmp_path / "gate-a"
    job = until(queue_root, gated_job(queue_root, "a", gate).id, lambda j: j.started, "ran")
    assert job.state == "running"
    with pytest.raises(InputError, match="is running: cancel it first"):
        jobs.delete_job(job.id, queue_root)
    assert job.folder.is_dir() and jobs.delete_finished_jobs(queue_root) == []
    gate.touch()
    jobs.wait_job(job.id, queue_root, timeout_s=30)
    jobs.delete_job(job.id, queue_root)
    assert not job.folder.exists() and jobs.list_jobs(queue_root) == []


# -- job kinds: the command lines they build, their forms, a kind a family declares ----------


@pytest.fixture
def launches(monkeypatch) -> list[dict]:
    """What the jobs started would run, recorded instead of launched."""
    calls: list[dict] = []

    def record(root, job_id, kind, title, commands, out_dir, fields, files=None):
        out = str(out_dir.relative_to(root))
        calls.append({"kind": kind, "title": title, "commands": commands, "out": out,
                      "fields": fields})  # fmt: skip

    monkeypatch.setattr(jobs, "launch", record)
    return calls


def test_the_command_lines_are_the_workbench_verbs(empty_runs, launches):
    """Argv lists as the app built them before kinds were declared (the same job records)."""
    py = [sys.executable, "-m", "workbench"]
    two = f"{SITE}, blocks.0.hook_resid_post"
    jobs.start_capture(model="toy-lm", dataset="grammar-lm", sites=two, out="stores/x",
                       n_examples=8, batch_size=4)  # fmt: skip
    small_store(empty_runs / "stores" / "s")
    jobs.start_job("sae", store="stores/s", site=SITE, out="sae/x", k=4, steps=40)
    jobs.start_job("sae", store="stores/s", site=SITE, d_sae=64, arch="relu")  # out: its template
    capture, sae, sae_default = launches
    sites = f"{SITE},blocks.0.hook_resid_post"
    assert capture["commands"] == [[
        *py, "capture", "--model=toy-lm", f"--sites={sites}", "--dataset=grammar-lm",
        f"--out={empty_runs}/stores/x", "--positions=all", "--batch-size=4", "--max-length=128",
        "--store-dtype=float32", "--device=auto", "--n-examples=8",
    ]]  # fmt: skip
    assert capture["title"] == f"capture toy-lm on grammar-lm at {sites}"
    assert capture["fields"]["sites"] == sites and capture["fields"]["n_examples"] == 8
    assert sae["commands"] == [
        [*py, "sae", "train", f"--store={empty_runs}/stores/s", f"--site={SITE}",
         f"--out={empty_runs}/sae/x", "--arch=topk", "--seed=0", "--k=4", "--steps=40"],
        [*py, "sae", "features", f"--sae={empty_runs}/sae/x", f"--store={empty_runs}/stores/s",
         f"--site={SITE}", f"--out={empty_runs}/sae/x/features", "--html=none"],
    ]  # fmt: skip
    assert (sae["kind"], sae["title"], sae["out"]) == (
        "sae",
        f"SAE (topk) on stores/s {SITE}",
        "sae/x",
    )
    assert sae_default["out"] == f"sae/s-{SITE}" and "--d-sae=64" in sae_default["commands"][0]
    with pytest.raises(InputError, match="unknown job kind 'gan'; installed: capture, sae, batch"):
        jobs.start_job("gan")
    with pytest.raises(InputError, match="job kind 'sae' has no field 'epochs'"):
        jobs.start_job("sae", store="stores/s", site=SITE, epochs=3)


def test_a_form_is_drawn_from_the_schema(empty_runs):
    small_store(empty_runs / "stores" / "s")
    sae = jobs.job_kinds()["sae"]
    layout = jobs.form_layout(sae)
    assert [f.name for f in layout.before] == ["store"] and layout.more == []
    main = ["site", "arch", "k", "l0_coeff", "d_sae", "steps", "batch_size", "lr", "out"]
    assert [f.name for f in layout.main] == main and layout.columns == 3
    values = {"store": "stores/s"}

    def widget(kind, name, given=values):
        return jobs.field_widget(kind, kind.get_field(name), given, empty_runs, "jobs")

    site = widget(sae, "site")
    assert (site.widget, site.args["key"]) == ("selectbox", "jobs-sae-site-stores/s")
    assert site.args["options"] == [SITE] and site.args["index"] == 0
    assert widget(sae, "arch").args["options"][widget(sae, "arch").args["index"]] == "topk"
    d_sae = widget(sae, "d_sae")  # optional: 0 stands for None
    assert (d_sae.widget, d_sae.args["min_value"], d_sae.args["value"]) == ("number_input", 0, 0)
    lr = widget(sae, "lr")
    assert (lr.args["min_value"], lr.args["max_value"], lr.args["value"]) == (0.0, 1.0, 0.0)
    assert widget(sae, "out").args["placeholder"] == "sae/s-SITE"
    raw = {"store": "stores/s", "site": SITE, "arch": "relu", "k": 16, "d_sae": 0,
           "steps": 500.0, "batch_size": 256, "lr": 4e-4, "out": "  "}  # fmt: skip
    fields = jobs.form_fields(sae, raw)
    assert fields == {**raw, "d_sae": None, "steps": 500, "out": f"sae/s-{SITE}"}
    assert isinstance(fields["steps"], int)
    blank = {**raw, "k": 0, "steps": 0, "batch_size": 0, "lr": 0.0}  # 0: the CLI's own rule
    assert {n: v for n, v in jobs.form_fields(sae, blank).items() if v is None} == dict.fromkeys(
        ["k", "d_sae", "steps", "batch_size", "lr"]
    )

    capture = jobs.job_kinds()["capture"]
    layout = jobs.form_layout(capture)
    assert [f.name for f in layout.before] == ["model"] and layout.columns == 2
    assert [f.name for f in layout.main] == ["dataset", "n_examples", "sites", "out"]
    assert [f.name for f in layout.more] == ["positions", "batch_size", "max_length", "store_dtype"]
    toy = {"model": "toy-lm"}
    dataset, sites = widget(capture, "dataset", toy), widget(capture, "sites", toy)
    model = jobs.capture_models(empty_runs)["toy-lm"]
    assert dataset.args["options"][dataset.args["index"]] == model["dataset"]
    assert dataset.args["key"] == "jobs-capture-dataset-toy-lm"
    assert (
        sites.args["value"] == model["sites"] and sites.args["key"] == "jobs-capture-sites-toy-lm"
    )
    assert widget(capture, "out", toy).args["placeholder"] == "stores/toy-lm-DATASET"
    models = widget(capture, "model", {})
    unbuilt = [m for m, info in jobs.capture_models(empty_runs).items() if not info["built"]]
    assert all("not built yet" in models.args["format_func"](m) for m in unbuilt)
    raw = {"model": "toy-lm", "dataset": "grammar-lm", "n_examples": 0, "sites": " a.b ",
           "out": "", "positions": " all "}  # fmt: skip
    cleaned = {"n_examples": None, "sites": "a.b", "positions": "all"}
    assert jobs.form_fields(capture, raw) == {**raw, **cleaned, "out": "stores/toy-lm-grammar-lm"}

    batch = jobs.job_kinds()["batch"]
    assert jobs.one_of_start(batch, {}, empty_runs) == 1  # no spec file: paste one
    (empty_runs / "s.yaml").write_text("name: s\n")
    assert jobs.one_of_start(batch, {}, empty_runs) == 0
    raw = {"spec": "s.yaml", "spec_text": "x", "out": " ", "workers": 2.0}
    assert jobs.form_fields(batch, raw, "spec") == {"spec": "s.yaml", "out": None, "workers": 2}
    assert jobs.form_fields(batch, raw, "spec_text")["spec_text"] == "x"


def test_a_done_jobs_output_opens_on_the_page_its_kind_declares(tmp_path):
    ended = {"exit": {"exit_code": 0, "finished": time.time()}}
    fake_job(tmp_path, "20250101-000000-capture-0000", dead_pid(), **ended)
    sae = fake_job(tmp_path, "20250101-000001-sae-0000", dead_pid(), **ended)
    gone = fake_job(tmp_path, "20250101-000002-gone-0000", dead_pid(), **ended)
    for folder, kind, out in ((sae, "sae", "sae/y"), (gone, "gone", "stores/x")):
        record = json.loads((folder / "job.json").read_text())
        (folder / "job.json").write_text(json.dumps({**record, "kind": kind, "out": out}))
    by_id = {job.kind: job for job in jobs.list_jobs(tmp_path)}
    assert [jobs.output_target(by_id[k], tmp_path) for k in ("capture", "sae")] == [None, None]
    (tmp_path / "stores" / "x").mkdir(parents=True)
    (tmp_path / "sae" / "y" / "features").mkdir(parents=True)
    assert jobs.output_target(by_id["capture"], tmp_path) == ("Explore", {"store": "stores/x"})
    assert jobs.output_target(by_id["sae"], tmp_path) == (
        "SAE_features",
        {"features": "sae/y/features"},
    )
    assert jobs.output_target(by_id["gone"], tmp_path) is None  # its kind is not installed
    assert by_id["gone"].state == "done" and by_id["gone"].progress is None
    running = fake_job(tmp_path, "20250101-000003-capture-0000", None)
    assert jobs.output_target(jobs.read_job(running.name, tmp_path), tmp_path) is None


def test_a_later_steps_note_joins_its_progress(tmp_path):
    """An SAE job's progress comes from its trainer's log; once the runner has started its
    second command (`$ ARGV` in the job's log), with the note that step declares."""
    out = tmp_path / "sae" / "y"
    out.mkdir(parents=True)
    lines = [{"event": "start", "step": 0, "total_steps": 200}, {"event": "step", "step": 30}]
    (out / "train_log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    folder = tmp_path / "jobs" / "x"
    folder.mkdir(parents=True)
    commands = [["python", "-m", "workbench", "sae", "train"], ["python", "-m", "sae", "f x"]]
    record = {"kind": "sae", "out": "sae/y", "commands": commands}
    (folder / "log.txt").write_text("$ python -m workbench sae train\n")
    assert job_progress(folder, record, True) == (0.15, "step 30/200")
    (folder / "log.txt").write_text("$ python -m workbench sae train\n$ python -m sae 'f x'\n")
    assert job_progress(folder, record, True) == (0.15, "step 30/200; writing feature statistics")
    assert job_progress(folder, record, False) == (0.15, "step 30/200")


def echo_commands(values) -> list[list[str]]:
    return [["--help"]]


ECHO = JobKind(
    "echo",
    "echo",
    (JobField("words", "str", "hi"), JobField("out", "folder", "echo/{words}")),
    echo_commands,
    title="echo {words}",
    output_page="Explore",
    output_param="store",
)


@pytest.fixture
def declare(monkeypatch):
    yield from declarations(monkeypatch)


@pytest.mark.slow
def test_a_declared_job_kind_starts_without_touching_the_app(queue_root, declare):
    declare("workbench.jobs", "echo", ECHO)
    assert list(jobs.job_kinds()) == ["capture", "sae", "echo", "batch"]  # by order, then name
    job = jobs.start_job("echo", root=queue_root, words="yo")
    assert job.commands == [[sys.executable, "-m", "workbench", "--help"]]
    assert (job.kind, job.title, job.out) == ("echo", "echo yo", "echo/yo")
    assert json.loads((job.folder / "job.json").read_text())["fields"] == {
        "words": "yo",
        "out": "echo/yo",
    }
    job = jobs.wait_job(job.id, queue_root, timeout_s=WAIT_S)
    assert job.state == "done" and "usage: workbench" in jobs.log_tail(job)


def test_a_runs_view_reads_the_runs_directory_once(tmp_path, monkeypatch):
    from workbench_app.services import job_kinds

    reads = {"stores": 0, "models": 0}
    real_stores, real_models = job_kinds.stores_by_path, job_kinds.capture_models

    def count(name, real):
        def counted(*args, **kwargs):
            reads[name] += 1
            return real(*args, **kwargs)

        return counted

    monkeypatch.setattr(job_kinds, "stores_by_path", count("stores", real_stores))
    monkeypatch.setattr(job_kinds, "capture_models", count("models", real_models))
    view = job_kinds.RunsView(tmp_path)
    for kind in (jobs.CAPTURE_JOB, SAE_JOB):
        values: dict = {}
        for f in kind.fields:
            job_kinds.field_options(f, values, view=view)
            values[f.name] = job_kinds.field_options(f, values, view=view).default
    assert reads == {"stores": 1, "models": 1}
    job_kinds.field_options(jobs.CAPTURE_JOB.get_field("model"), {}, tmp_path)
    assert reads["models"] == 2  # without a view, each call reads again
