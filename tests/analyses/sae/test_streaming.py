"""Streamed SAE training: the shuffle-buffer order over windows of store rows, plain reads of
every stored dtype, the memory cap, resume (in process and after kill -9), flat RSS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import planted, write_store

from analyses.sae import TrainConfig, create_sae, read_log, stream, train
from analyses.sae.io import _load_tensors
from analyses.sae.stream import (
    BufferedOrder,
    ShardReader,
    StreamPlan,
    parse_memory,
    plan_stream,
)
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import ActivationStore, StoreWriter

SITE = "blocks.0.hook_resid_post"
ROOT = Path(__file__).resolve().parents[3]


def indexed(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    """(n, d) float32 rows whose column 0 is the row's index (exact in float32 below 2^24)."""
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    x[:, 0] = np.arange(n)
    return x


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "store", indexed(1000), seq=10, chunks=7)


def order(store, buffer_rows: int, window_rows: int, prefetch: bool = True) -> BufferedOrder:
    return BufferedOrder(ShardReader(store, SITE), StreamPlan(buffer_rows, window_rows), prefetch)


def ids(batches) -> list[np.ndarray]:
    return [b[:, 0].astype(np.int64) for b in batches]


# ----------------------------------------------------------------------------- the order
@pytest.mark.parametrize("plan", [(120, 10), (100, 7), (1000, 16), (64, 1), (999, 999)])
def test_every_row_once_per_epoch(store, plan):
    o = order(store, *plan)
    x = store.read(SITE)
    for epoch in (0, 1):
        rows = o.epoch_rows(seed=5, epoch=epoch)
        assert np.array_equal(np.sort(rows), np.arange(1000))
        got = list(o.batches(64, seed=5, epoch=epoch))
        assert [len(b) for b in got] == [64] * 15 + [40]
        # the data path reads exactly the rows the index computation names
        np.testing.assert_array_equal(np.concatenate(got), x[rows])
    assert not np.array_equal(o.epoch_rows(5, 0), o.epoch_rows(5, 1))


def test_deterministic(store):
    a = ids(order(store, 120, 10).batches(50, seed=3, epoch=2))
    b = ids(order(store, 120, 10, prefetch=False).batches(50, seed=3, epoch=2))
    c = ids(order(store, 120, 10).batches(50, seed=4, epoch=2))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("batch", "start", "where"),
    [(50, 1, "inside buffer 0"), (40, 3, "at the 0/1 boundary"), (50, 2, "spanning 0 and 1")],
)
def test_start_batch_equals_skipping(store, monkeypatch, batch, start, where):
    # buffers of 12 windows x 10 rows = 120 rows: [0, 120), [120, 240), ...
    o = order(store, 120, 10, prefetch=False)
    whole = ids(o.batches(batch, seed=1, epoch=0))
    loaded: list[int] = []
    load = BufferedOrder._load
    monkeypatch.setattr(
        BufferedOrder,
        "_load",
        lambda self, s, e, lay, b: loaded.append(b) or load(self, s, e, lay, b),
    )
    gen = o.batches(batch, seed=1, epoch=0, start_batch=start)
    first = next(gen)
    # only the buffers the first batch draws from (and, with prefetch off, the next) are read
    assert loaded[0] == start * batch // 120, where
    assert max(loaded) <= (start * batch + batch - 1) // 120 + 1
    rest = [first, *gen]
    assert len(rest) == len(whole) - start
    for p, q in zip(ids(rest), whole[start:], strict=True):
        assert np.array_equal(p, q), where


def test_rows_of_a_batch_come_from_many_windows(tmp_path):
    st = write_store(tmp_path / "big", indexed(4000), seq=10, chunks=5)
    o = order(st, 1024, 16)  # 64 windows per buffer
    distinct, runs = [], []
    for batch in ids(o.batches(64, seed=0, epoch=0)):
        distinct.append(len(np.unique(batch // 16)))
        runs.append(np.mean(np.diff(np.sort(batch)) == 1))
    # 64 draws from 64 windows hit ~64 * (1 - (1 - 1/64)^64) ~ 40.7 distinct windows; reading
    # whole windows in turn would give 4 per batch, with 60 of 63 neighbours consecutive
    assert np.mean(distinct) > 30
    assert np.mean(runs) < 0.2
    chunk_of = np.searchsorted(ShardReader(st, SITE).starts, np.arange(4000), side="right") - 1
    first = ids(o.batches(64, seed=0, epoch=0))[0]
    assert len(np.unique(chunk_of[first])) >= 3  # one batch spans several store chunks


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_plain_reads_match_the_store_reader(tmp_path, monkeypatch, dtype):
    x = indexed(300, d=6) * 0.37
    writer = StoreWriter(
        tmp_path / dtype, {"model": "m", "dataset": "d", "sites": [SITE], "dtype": dtype}
    )
    for a in range(0, 300, 70):
        writer.append({SITE: x[a : a + 70]}, None, np.arange(a, min(300, a + 70)), None)
    writer.finalize()
    st = ActivationStore(tmp_path / dtype)
    reader = ShardReader(st, SITE)
    out = np.empty((200, 6), np.float32)
    reader.read_into(33, 233, out)  # spans three chunk files
    np.testing.assert_array_equal(out, st.read(SITE, slice(33, 233)))
    rows = np.array([0, 1, 2, 69, 70, 150, 299])
    np.testing.assert_array_equal(reader.gather(rows), st.read(SITE, rows))
    monkeypatch.setattr(stream, "WINDOW_BYTES", 100)  # bf16/fp16: read in pieces of 8 rows
    again = np.zeros_like(out)
    reader.read_into(33, 233, again)
    np.testing.assert_array_equal(again, out)


def test_a_non_finite_row_is_named_even_from_the_background_read(store):
    # the writer refuses NaN, so plant one in the chunk file afterwards (sizes unchanged)
    reader = ShardReader(store, SITE)
    chunk = int(np.searchsorted(reader.starts, 777, side="right")) - 1
    shard = np.load(reader.paths[chunk], mmap_mode="r+")
    shard[777 - reader.starts[chunk], 5] = np.nan
    shard.flush()
    del shard
    with pytest.raises(InputError, match="store row 777, dim 5"):
        list(order(store, 120, 10).batches(50, seed=0, epoch=0))
    with pytest.raises(InputError, match="store row 777, dim 5"):
        order(store, 120, 10).read_rows(np.arange(770, 780))


# ---------------------------------------------------------------------------- memory cap
def test_parse_memory():
    assert parse_memory("512MiB") == 512 << 20
    assert parse_memory("2GiB") == 2 << 30
    assert parse_memory("1.5GB") == 1_500_000_000
    assert parse_memory("800m") == 800 << 20
    assert parse_memory(4096) == parse_memory("4096") == 4096
    for bad in ("lots", "12 parsecs", "-1GiB", "0"):
        with (
            pytest.raises(InputError, match="512MiB")
            if bad != "0"
            else pytest.raises(InputError, match="more than 0")
        ):
            parse_memory(bad)
    with pytest.raises(InputError, match="memory cap 'lots'"):
        TrainConfig(memory_cap="lots")
    assert TrainConfig(memory_cap="512 MiB") == TrainConfig(memory_cap=512 << 20)


def test_default_streams_only_sites_bigger_than_a_quarter_of_memory(store, monkeypatch):
    from analyses.sae.data import RowSource

    source = RowSource(store=store, site=SITE)  # 1000 x 8 float32 = 32,000 bytes
    kwargs = {"batch_size": 50, "d_sae": 16, "n_params": 2 * 8 * 16 + 24}
    monkeypatch.setattr(stream, "available_memory", lambda: 4 * 32_000)
    assert isinstance(stream.choose_order(source, None, **kwargs), stream.PermutationOrder)
    monkeypatch.setattr(stream, "available_memory", lambda: 4 * 32_000 - 4)
    with pytest.raises(InputError, match="too small"):  # a quarter of 128 KB: 32 KB
        stream.choose_order(source, None, **kwargs)
    monkeypatch.setattr(stream, "available_memory", lambda: 4 << 20)
    assert isinstance(stream.choose_order(source, None, **kwargs), stream.PermutationOrder)
    monkeypatch.setattr(stream, "available_memory", lambda: 100_000)
    with pytest.raises(InputError, match="smallest cap"):
        stream.choose_order(source, None, **kwargs)
    # with a cap, a store always streams; a checkpoint's order wins when no cap is given
    got = stream.choose_order(source, 1 << 20, **kwargs)
    assert isinstance(got, stream.BufferedOrder)
    saved = got.describe()
    monkeypatch.setattr(stream, "available_memory", lambda: 1 << 40)
    again = stream.choose_order(source, None, saved=saved, **kwargs)
    assert isinstance(again, stream.BufferedOrder) and again.describe() == saved


def test_cap_too_small_names_the_smallest_that_works(store, tmp_path):
    sae = create_sae("topk", d_in=8, d_sae=64, k=3)
    config = TrainConfig(batch_size=100, n_steps=3, memory_cap="64KiB")
    with pytest.raises(InputError) as err:
        train(sae, store, tmp_path / "a", config, site=SITE)
    message = str(err.value)
    assert "memory cap 64.0 KiB" not in message  # formatted in MiB
    assert "memory cap 0.1 MiB (65536 bytes) is too small" in message
    assert "one batch of 100 rows x d_in 8" in message and "Adam state" in message
    smallest = int(message.split("--memory-cap ")[1].split("MiB")[0])
    # the cap it names does work
    ok = TrainConfig(batch_size=100, n_steps=3, memory_cap=f"{smallest}MiB")
    assert train(sae, store, tmp_path / "b", ok, site=SITE)["done"]
    # an array is in memory already, but one batch plus the SAE must still fit
    with pytest.raises(InputError, match="already in memory"):
        train(sae, indexed(1000), tmp_path / "c", TrainConfig(batch_size=100, memory_cap="1KiB"))


def test_plan_sizes_buffers_from_the_cap():
    args = {"n_rows": 10**7, "d_in": 256, "d_sae": 2048, "n_params": 2 * 256 * 2048 + 2304}
    small = plan_stream(512 << 20, batch_size=4096, **args)
    large = plan_stream(2 << 30, batch_size=4096, **args)
    assert 4096 <= small.buffer_rows < large.buffer_rows
    per_row = 4 * 256 + 8
    assert 2 * large.buffer_rows * per_row < 2 << 30
    assert small.buffer_rows // small.window_rows >= 64
    assert plan_stream(1 << 40, batch_size=4096, **args).buffer_rows == 10**7


# ------------------------------------------------------------------------- training, resume
def test_streamed_training_resumes_exactly(store, tmp_path):
    config = TrainConfig(
        batch_size=64, epochs=3, lr=2e-3, warmup_steps=3, normalize="expected_norm",
        memory_cap="2MiB", dead_window_tokens=300,
    )  # fmt: skip
    whole = create_sae("topk", d_in=8, d_sae=32, k=3)
    train(whole, store, tmp_path / "whole", config, site=SITE)
    part = create_sae("topk", d_in=8, d_sae=32, k=3)
    assert not train(part, store, tmp_path / "part", config, site=SITE, stop_after=21)["done"]
    resumed = create_sae("topk", d_in=8, d_sae=32, k=3)
    assert train(resumed, store, tmp_path / "part", config, site=SITE)["done"]
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(resumed, name), getattr(whole, name)), name
    saved = json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())
    assert saved["settings"]["data"]["order"]["order"] == "buffered"
    # another cap is another data order: refused, not silently mixed
    other = TrainConfig(**{**config.__dict__, "memory_cap": "4MiB", "epochs": 4})
    with pytest.raises(InputError, match="other settings"):
        train(resumed, store, tmp_path / "part", other, site=SITE)


def test_resume_from_the_previous_checkpoint_after_a_kill_between_renames(store, tmp_path):
    config = TrainConfig(batch_size=64, n_steps=30, memory_cap="2MiB", checkpoint_every=5)
    sae = create_sae("topk", d_in=8, d_sae=32, k=3)
    train(sae, store, tmp_path / "r", config, site=SITE, stop_after=12)
    # killed after `checkpoint` -> `checkpoint.old`, before `checkpoint.tmp` -> `checkpoint`
    (tmp_path / "r" / "checkpoint").rename(tmp_path / "r" / "checkpoint.old")
    (tmp_path / "r" / "checkpoint.tmp").mkdir()
    assert train(sae, store, tmp_path / "r", config, site=SITE)["done"]
    starts = [r["step"] for r in read_log(tmp_path / "r") if r["event"] == "start"]
    assert starts == [0, 12]


def test_cli_memory_cap(store, tmp_path, capsys):
    base = ["sae", "train", "--store", str(store.path), "--site", SITE, "--d-sae", "32"]
    base += ["--k", "3", "--batch-size", "50", "--steps", "4"]
    assert main([*base, "--memory-cap", "1MiB", "--out", str(tmp_path / "r"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"]
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert "buffered" in json.dumps(meta)
    assert main([*base, "--memory-cap", "many", "--out", str(tmp_path / "s")]) == 2
    assert "512MiB" in capsys.readouterr().err
    assert main([*base, "--memory-cap", "10KiB", "--out", str(tmp_path / "t")]) == 2
    assert "smallest cap that works" in capsys.readouterr().err


DRIVER = r"""
import os, sys, time
import torch
torch.set_num_threads(1)
from analyses.sae import stream
if os.environ.get("SLOW_BATCHES"):
    batches = stream.BufferedOrder.batches
    def slow(self, *args, **kwargs):
        for batch in batches(self, *args, **kwargs):
            time.sleep(float(os.environ["SLOW_BATCHES"]))
            yield batch
    stream.BufferedOrder.batches = slow
from workbench.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # three interpreters importing torch: ~10 s on 2 cores
def test_kill_9_then_resume_is_bit_identical(tmp_path):
    """Kill -9 a streamed `workbench sae train` after a mid-run checkpoint, resume it, and get
    exactly the weights of an uninterrupted run.

    Why exact: the checkpoint holds the weights, Adam's moments and step count, the per-latent
    silence counters and the input scale, bit for bit (safetensors + torch.save), and the
    position (epoch, batch). The buffered order is a pure function of (seed, epoch, buffer
    index) and the plan recorded in the checkpoint, so the resumed run feeds the same float32
    batches in the same order; with one torch thread on the CPU every step is the same
    sequence of floating-point operations. The checkpoint directory is renamed into place
    whole, so the kill cannot leave a half-written one.
    """
    st = write_store(tmp_path / "store", planted(n=2000, d=16, m=24)[0], seq=10, chunks=6)
    args = ["sae", "train", "--store", str(st.path), "--site", SITE, "--d-sae", "32"]
    args += ["--k", "3", "--batch-size", "50", "--epochs", "3", "--lr", "2e-3"]
    args += ["--normalize", "expected_norm", "--memory-cap", "2MiB", "--checkpoint-every", "10"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def run(out, slow=None):
        extra = {"SLOW_BATCHES": str(slow)} if slow else {}
        cmd = [sys.executable, "-c", DRIVER, *args, "--out", str(out)]
        with open(f"{out}.stderr", "ab") as err:  # the child keeps its own copy of the fd
            return subprocess.Popen(cmd, env={**env, **extra}, cwd=ROOT, stderr=err)

    def tail(out) -> str:
        return Path(f"{out}.stderr").read_text()[-2000:]

    whole = run(tmp_path / "whole")
    killed = run(tmp_path / "killed", slow=0.01)  # 120 steps x 10 ms: killable mid-run
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 60
    step = 0
    while step < 30 and time.monotonic() < deadline and killed.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            step = json.loads(state.read_text())["state"]["step"]
        time.sleep(0.005)
    time.sleep(0.037)  # somewhere between two checkpoints
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, tail(tmp_path / "killed")
    saved = json.loads(state.read_text())["state"]
    assert 30 <= saved["step"] < 120
    assert not (tmp_path / "killed" / "sae.safetensors").exists()
    resumed = run(tmp_path / "killed")
    assert resumed.wait() == 0, tail(tmp_path / "killed")
    assert whole.wait() == 0, tail(tmp_path / "whole")
    starts = [
        json.loads(line)
        for line in (tmp_path / "killed" / "train_log.jsonl").read_text().splitlines()
        if '"event": "start"' in line
    ]
    assert [s["step"] for s in starts] == [0, saved["step"]]
    a = _load_tensors(tmp_path / "whole" / "sae.safetensors")
    b = _load_tensors(tmp_path / "killed" / "sae.safetensors")
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


RSS_CHILD = r"""
import json, sys, threading, time
import torch
torch.set_num_threads(1)
from analyses.sae import TrainConfig, create_sae, read_log, train
from workbench.store import ActivationStore

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

store = ActivationStore(sys.argv[1])
sae = create_sae("topk", d_in=64, d_sae=128, k=4)
# warm up torch (kernels, autograd, allocator pools) on a few in-memory rows first
warm = torch.randn(512, 64).numpy()
train(sae, warm, sys.argv[2] + "-warm", TrainConfig(batch_size=256, n_steps=2), resume=False)
sae = create_sae("topk", d_in=64, d_sae=128, k=4)
base = {"anon": status("RssAnon"), "rss": status("VmRSS")}
peak = dict(base)
halt = threading.Event()
def sample():
    while not halt.is_set():
        peak["anon"] = max(peak["anon"], status("RssAnon"))
        peak["rss"] = max(peak["rss"], status("VmRSS"))
        time.sleep(0.005)
thread = threading.Thread(target=sample, daemon=True)
thread.start()
config = TrainConfig(batch_size=256, epochs=1, memory_cap="8MiB", norm_sample_rows=1024)
train(sae, store, sys.argv[2], config, site="blocks.0.hook_resid_post", resume=False)
halt.set(); thread.join()
print(json.dumps({k: peak[k] - base[k] for k in peak}))
"""


@pytest.mark.slow
def test_rss_flat_in_store_size(tmp_path):
    """Peak RSS growth while training under an 8 MiB cap on a store of N and of 4N rows.

    The 4N store holds 3 x 25 MiB more rows than the N one; streamed, neither the anonymous
    memory (buffers) nor the total RSS (no memory-mapped pages) may follow them."""
    n = 100_000  # 64 float32 per row: 25.6 MB for N, 102 MB for 4N
    growth = {}
    for rows in (n, 4 * n):
        path = tmp_path / f"s{rows}"
        writer = StoreWriter(path, {"model": "m", "dataset": "d", "sites": [SITE]})
        rng = np.random.default_rng(0)
        for a in range(0, rows, 50_000):
            x = rng.standard_normal((50_000, 64)).astype(np.float32)
            writer.append({SITE: x}, None, np.arange(a, a + 50_000), None)
        writer.finalize()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(path), str(tmp_path / f"run{rows}")],
            capture_output=True, text=True, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        growth[rows] = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 1 << 20
    # past torch's own warm-up: the cap's 8 MiB plus allocator slack, whatever the store's size
    for rows, g in growth.items():
        assert g["anon"] < 16 * mib, (rows, g)
    assert growth[4 * n]["anon"] - growth[n]["anon"] < 8 * mib, growth
    assert growth[4 * n]["rss"] - growth[n]["rss"] < 8 * mib, growth
