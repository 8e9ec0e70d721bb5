"""The CLI as a Unix tool: it starts without importing torch, stops quietly when its reader
closes the pipe, and a Ctrl-C exits 130 leaving nothing unfinished that reads as complete."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from workbench.cli.main import SIGPIPE_EXIT, main
from workbench.errors import StoreIncompleteError
from workbench.store import ActivationStore

LAZY_PACKAGES = ["workbench", "workbench.batch", "analyses.sae", "analyses.steering"]


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def _workbench(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["zoo", "list", "--root", "{tmp}"], ["capture", "--model"], ["sae", "--help"]],
)
def test_answers_without_importing_torch(argv, tmp_path):
    """`workbench --help`, `zoo list` and argument errors import no heavy library (their wall
    time, under 0.5 s, is measured in benchmarks/bench_cli_start.py, not here)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = (
        "import sys\nfrom workbench.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted({'torch', 'transformers', 'sklearn', 'pandas'} & set(sys.modules)))"
    )
    assert _python(code).splitlines()[-1] == "[]"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_resolve(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._EXPORTS)
    for name in module.__all__:
        assert getattr(module, name) is not None
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def _capture_argv(neox_dir, out, *extra: str) -> list[str]:
    return [
        "capture",
        "--model",
        str(neox_dir),
        "--sites",
        "blocks.*.hook_resid_post",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def small_store(neox_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "store"
    argv = _capture_argv(neox_dir, out, "--text", "the cat sat on the mat", "--text", "a dog")
    assert main(argv) == 0
    return out


def test_json_into_a_closed_pipe_stops_quietly(small_store):
    """`workbench info STORE --json | head -n 0`: the reader is gone before the first write."""
    proc = _workbench("info", str(small_store), "--json")
    proc.stdout.close()  # the reader goes away at once
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == SIGPIPE_EXIT
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_json_read_one_line_then_closed(small_store):
    """`workbench info STORE --json | head -n 1`: one line reaches the reader, no traceback."""
    proc = _workbench("info", str(small_store), "--json")
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert first.strip() == "{"
    assert proc.wait(timeout=120) in (0, SIGPIPE_EXIT)  # 0 when it wrote all before the close
    assert "Traceback" not in err, err


def test_interrupt_exits_130_in_process(monkeypatch, capsys):
    from workbench.cli import commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_info", interrupted)
    assert main(["info", "anything"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_during_capture_leaves_an_incomplete_store(neox_dir, tmp_path):
    """SIGINT while a capture writes: exit 130, and the store refuses to open as complete."""
    out = tmp_path / "store"
    argv = _capture_argv(neox_dir, out, "--dataset", "grammar-lm", "--batch-size", "2")
    proc = _workbench(*argv, "--n-examples", "20000", env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not (out / "manifest.json").is_file() and proc.poll() is None:
        assert time.monotonic() < deadline, "the capture never started writing"
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the capture finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read()
    assert "interrupted" in err and "Traceback" not in err, err
    with pytest.raises(StoreIncompleteError):
        ActivationStore(out)


def test_an_export_named_like_its_submodule_stays_the_function():
    """`analyses.sae.evaluate` is both a submodule and the function it defines: importing the
    submodule first must not turn `from analyses.sae import evaluate` into the module."""
    out = _python(
        "import sys\nimport analyses.sae.evaluate\n"
        "m = sys.modules['analyses.sae.evaluate']\n"
        "from analyses.sae import evaluate\n"
        "import analyses.sae\n"
        "print(callable(evaluate), evaluate is m.evaluate, analyses.sae.evaluate is m.evaluate)"
    )
    assert out == "True True True"
