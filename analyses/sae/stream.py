"""SAE training data streamed from a store: a shuffle buffer over windows of rows read from disk.

Data order of one epoch (`BufferedOrder`, seeds from (seed, epoch)):

1. the site's rows are cut into *windows* of `window_rows` consecutive rows (the last may be
   short); the windows are permuted by `np.random.default_rng([seed, epoch, 0])`;
2. consecutive groups of `buffer_rows // window_rows` windows of that order form *buffers*
   (so a buffer holds at most `buffer_rows` rows);
3. the rows of buffer b are permuted by `np.random.default_rng([seed, epoch, 1, b])`;
4. batches are consecutive runs of `batch_size` rows of the concatenated buffers.

Each row is visited once per epoch. Batch i of an epoch starts at stream position
i * batch_size, so a resumed run computes which buffer holds that position, loads it (and the
next, if the batch spans two) and goes on: nothing before it is read.

Rows are read with `os.preadv` straight into a preallocated float32 numpy buffer (bf16/fp16
through a small scratch array): plain reads leave no file-backed pages mapped in the process,
so resident memory stays flat in the store's size (the kernel's page cache may keep the file
data; that memory is reclaimable and not the process's). While the trainer works on one
buffer, a background thread reads the next one.

Memory budget (`plan_stream`): two buffers (current + prefetched) of buffer_rows x d_in x 4
bytes plus 8 bytes per row for the in-buffer permutation, one batch's tensors (estimated, see
`batch_bytes`), the SAE's parameters with their gradients and Adam moments (4 copies of every
parameter) and the read scratch (at most `WINDOW_BYTES`). The cap covers what training
allocates for data and model, not the Python/torch runtime itself (about 250-300 MiB after
`import torch`), nor the input-normalisation sample read before training starts
(`norm_sample_rows` x d_in, float32 and a float64 copy; freed before the buffers exist).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InputError, StoreCorruptError

MiB = 1 << 20
_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}  # fmt: skip
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
#: largest window read (bytes of float32 rows): big enough for full-speed sequential reads,
#: small enough that a buffer holds many windows (rows of a batch come from many places).
WINDOW_BYTES = 1 * MiB
#: windows per buffer aimed at when the buffer is small
MIN_WINDOWS_PER_BUFFER = 64
#: without a cap, a store site is streamed when its float32 rows exceed this fraction of the
#: memory available at the start, under a cap of the same fraction
AUTO_FRACTION = 0.25


def parse_memory(value: str | int) -> int:
    """Bytes of a memory size: an int (bytes) or "512MiB", "2GiB", "1.5GB", "800M", "4096".

    Binary units: KiB/MiB/GiB/TiB (and K/M/G/T); decimal: KB/MB/GB/TB; case-insensitive.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        match = _MEMORY.match(str(value))
        if match is None or match.group(2).lower() not in _UNITS:
            raise InputError(
                f"memory cap {value!r} is not a size; write a number with an optional unit, "
                "e.g. 512MiB, 2GiB, 1.5GB, 800M or 1073741824 (bytes); units: B, KiB/K, "
                "MiB/M, GiB/G, TiB/T (binary), KB, MB, GB, TB (decimal)"
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise InputError(f"memory cap {value!r} must be more than 0 bytes")
    return size


def format_bytes(n: float) -> str:
    """`n` bytes as MiB (or GiB above 10 GiB), one decimal."""
    return f"{n / (1 << 30):.1f} GiB" if n >= 10 * (1 << 30) else f"{n / MiB:.1f} MiB"


def available_memory() -> int | None:
    """Bytes the kernel says are available (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


# ------------------------------------------------------------------------- memory budget
def model_bytes(n_params: int, d_sae: int) -> int:
    """Bytes of an SAE in training: each float32 parameter 4 times (value, gradient, Adam's
    two moments) plus the int64 per-latent silence counter."""
    return 4 * 4 * n_params + 8 * d_sae


def batch_bytes(batch_size: int, d_in: int, d_sae: int) -> int:
    """Estimated bytes of one training step's tensors: 8 (batch, d_in) float32 arrays (the
    batch, its scaled copy, x_hat, the residual and their gradients) and 9 (batch, d_sae) ones
    (pre-activations, latents, the top-k and AuxK scratch and their gradients).

    An estimate, kept above what was measured: peak anonymous memory of a step after warm-up,
    batch 4096, d_in 256, d_sae 2048, AuxK active, was 96 MiB (ReLU), 124 MiB (TopK) and
    272 MiB (BatchTopK), against 320 MiB estimated."""
    return 4 * batch_size * (8 * d_in + 9 * d_sae)


@dataclass(frozen=True)
class StreamPlan:
    """How a store site is streamed: rows per buffer and per window (both fix the data order)."""

    buffer_rows: int
    window_rows: int

    def describe(self) -> dict[str, Any]:
        return {
            "order": "buffered",
            "buffer_rows": self.buffer_rows,
            "window_rows": self.window_rows,
        }


def buffer_row_bytes(d_in: int) -> int:
    """Bytes one buffered row costs: float32 values plus its int64 in-buffer permutation slot."""
    return 4 * d_in + 8


def check_cap(cap: int, fixed: int, what: str, need_rows: int = 0, per_row: int = 0) -> None:
    """InputError if `cap` bytes cannot hold `fixed` bytes plus `need_rows` buffered rows."""
    smallest = fixed + need_rows * per_row
    if cap < smallest:
        raise InputError(
            f"memory cap {format_bytes(cap)} ({cap} bytes) is too small: {what} need "
            f"{format_bytes(smallest)} ({smallest} bytes); the smallest cap that works is "
            f"--memory-cap {math.ceil(smallest / MiB)}MiB (or use a smaller --batch-size / "
            "--d-sae)"
        )


def plan_stream(
    cap: int,
    n_rows: int,
    d_in: int,
    d_sae: int,
    n_params: int,
    batch_size: int,
    window_rows: int | None = None,
) -> StreamPlan:
    """The buffer and window sizes that fit `cap` bytes (module docstring: what counts).

    Two buffers of at least one batch each must fit beside the batch and the model, else an
    InputError names the cap, what one batch and the SAE need, and the smallest working cap.
    """
    scratch = min(WINDOW_BYTES, 2 * d_in * max(1, n_rows))  # bf16/fp16 read scratch
    fixed = model_bytes(n_params, d_sae) + batch_bytes(batch_size, d_in, d_sae) + scratch
    per_row = buffer_row_bytes(d_in)
    need = min(batch_size, n_rows)
    check_cap(
        cap,
        fixed,
        f"one batch of {batch_size} rows x d_in {d_in} "
        f"({format_bytes(batch_bytes(batch_size, d_in, d_sae))} of step tensors), the SAE with "
        f"d_sae {d_sae} and its Adam state ({format_bytes(model_bytes(n_params, d_sae))}) and "
        f"two buffers of at least one batch ({format_bytes(2 * need * per_row)})",
        2 * need,
        per_row,
    )
    buffer_rows = int(min(n_rows, (cap - fixed) // (2 * per_row)))
    if window_rows is None:
        window_rows = max(1, min(buffer_rows // MIN_WINDOWS_PER_BUFFER, WINDOW_BYTES // (4 * d_in)))
    if window_rows < 1 or window_rows > buffer_rows:
        raise InputError(f"window_rows must be in [1, {buffer_rows}], got {window_rows}")
    return StreamPlan(buffer_rows=buffer_rows, window_rows=int(window_rows))


# --------------------------------------------------------------------------- plain reads
class ShardReader:
    """Contiguous row ranges of one store site, read with `os.preadv` (no memory maps).

    Rows live in one .npy file per store chunk (`sites/<site>/chunk_NNNNNN.npy`, C order,
    (chunk rows, width), stored dtype: float32, float16 or bfloat16 as uint16 bits), after the
    .npy header; row r of a chunk starts at header + r * width * itemsize.
    """

    def __init__(self, store: Any, site: str):
        info = store.site_info(site)
        self.site = site
        self.width = int(info["width"])
        self.stored = str(info["dtype"])
        disk = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
        self.disk_dtype = np.dtype(disk[self.stored])
        self.row_bytes = self.width * self.disk_dtype.itemsize
        chunks = store.manifest["chunks"]
        self.paths = [str(p) for p in store.shard_paths(site)]
        self.starts = np.array([c["row_start"] for c in chunks] + [store.n_rows], dtype=np.int64)
        self.offsets = [
            self._data_offset(path, int(c["n_rows"]))
            for path, c in zip(self.paths, chunks, strict=True)
        ]
        self.n_rows = int(store.n_rows)

    def _data_offset(self, path: str, n: int) -> int:
        """Byte offset of row 0 in the .npy at `path`, checking its header."""
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
        except (OSError, ValueError) as e:
            raise StoreCorruptError(f"{path}: unreadable .npy header ({e})") from e
        if tuple(shape) != (n, self.width) or fortran or np.dtype(dtype) != self.disk_dtype:
            raise StoreCorruptError(
                f"{path}: .npy holds {shape} {dtype}{' (Fortran order)' if fortran else ''}, "
                f"the manifest says ({n}, {self.width}) {self.disk_dtype} (site {self.site!r})"
            )
        return int(offset)

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Rows [start, stop) of the site into `out` ((stop - start, width) float32, C order)."""
        if (
            out.shape != (stop - start, self.width)
            or out.dtype != np.float32
            or not out.flags.c_contiguous
        ):
            raise ValueError(f"out must be a C-contiguous ({stop - start}, {self.width}) float32")
        first = max(0, int(np.searchsorted(self.starts, start, side="right")) - 1)
        for chunk in range(first, len(self.starts) - 1):
            c0, c1 = int(self.starts[chunk]), int(self.starts[chunk + 1])
            if c0 >= stop:
                break
            a, b = max(start, c0), min(stop, c1)
            if a < b:
                self._read_chunk(chunk, a - c0, b - c0, out[a - start : b - start])

    def _read_chunk(self, chunk: int, a: int, b: int, out: np.ndarray) -> None:
        step = max(1, WINDOW_BYTES // self.row_bytes)
        if self.stored != "float32" and b - a > step:  # keep the bf16/fp16 scratch small
            for p in range(a, b, step):
                self._read_chunk(chunk, p, min(b, p + step), out[p - a : min(b, p + step) - a])
            return
        target: np.ndarray = out
        if self.stored != "float32":
            target = np.empty((b - a, self.width), self.disk_dtype)
        view = target.reshape(-1).view(np.uint8).data  # C-contiguous: a view, not a copy
        offset = self.offsets[chunk] + a * self.row_bytes
        fd = os.open(self.paths[chunk], os.O_RDONLY)
        try:
            done = 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], offset + done)
                if got == 0:
                    raise StoreCorruptError(
                        f"{self.paths[chunk]}: ended after {offset + done} bytes, rows "
                        f"[{a}, {b}) of the chunk need {offset + len(view)}"
                    )
                done += got
        finally:
            os.close(fd)
        if self.stored == "bfloat16":
            np.left_shift(target, 16, out=out.view(np.uint32), dtype=np.uint32)
        elif self.stored == "float16":
            out[...] = target

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 rows at sorted `rows` ((len(rows), width)), each run of consecutive rows in
        one read."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.width), np.float32)
        if not len(rows):
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(
            np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]]), strict=True
        ):
            self.read_into(int(rows[a]), int(rows[b - 1]) + 1, out[a:b])
        return out


# ---------------------------------------------------------------------------- data orders
class PermutationOrder:
    """Today's order: epoch e is `default_rng(seed + e).permutation(n_rows)`, each batch
    gathered from the array or the store's memory maps (`RowSource.epoch_batches`)."""

    def __init__(self, source: Any):
        self.source = source

    def describe(self) -> dict[str, Any]:
        return {"order": "permutation"}

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.source.read(rows)

    def batches(
        self, batch_size: int, seed: int, epoch: int, start_batch: int = 0
    ) -> Generator[np.ndarray, None, None]:
        return self.source.epoch_batches(batch_size, seed, epoch, start_batch)


def _seed(seed: int) -> int:
    return int(seed) % (1 << 64)  # SeedSequence entropy must be non-negative


@dataclass
class _Layout:
    """One epoch's buffers: window order, windows per buffer, buffer starts in the stream."""

    windows: np.ndarray  # (n_windows,) window ids in epoch order
    per_buffer: int
    starts: np.ndarray  # (n_buffers + 1,) stream position where each buffer begins

    @property
    def n_buffers(self) -> int:
        return len(self.starts) - 1


class BufferedOrder:
    """The shuffle-buffer order over windows of store rows (module docstring)."""

    def __init__(self, reader: ShardReader, plan: StreamPlan, prefetch: bool = True):
        self.reader = reader
        self.plan = plan
        self.n_rows = reader.n_rows
        self.prefetch = prefetch
        self.n_windows = math.ceil(self.n_rows / plan.window_rows)

    def describe(self) -> dict[str, Any]:
        return self.plan.describe()

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """float32 rows at sorted indices `rows`, by plain reads (the normalisation sample)."""
        out = self.reader.gather(rows)
        _check_finite(out, self.reader.site, lambda i: int(rows[i]))
        return out

    # -- index computation (no reads) -------------------------------------------------------
    def _window_sizes(self, windows: np.ndarray) -> np.ndarray:
        w = self.plan.window_rows
        return np.minimum(self.n_rows, (windows + 1) * w) - windows * w

    def layout(self, seed: int, epoch: int) -> _Layout:
        windows = np.random.default_rng([_seed(seed), epoch, 0]).permutation(self.n_windows)
        per_buffer = max(1, self.plan.buffer_rows // self.plan.window_rows)
        sizes = self._window_sizes(windows)
        ends = np.cumsum(sizes)[per_buffer - 1 :: per_buffer]
        if len(ends) == 0 or ends[-1] != self.n_rows:
            ends = np.append(ends, self.n_rows)
        return _Layout(windows, per_buffer, np.concatenate([[0], ends]).astype(np.int64))

    def buffer_rows(self, layout: _Layout, b: int) -> np.ndarray:
        """Global row ids of buffer b, in the order they are read (window by window)."""
        ids = layout.windows[b * layout.per_buffer : (b + 1) * layout.per_buffer]
        w = self.plan.window_rows
        return np.concatenate(
            [np.arange(i * w, min(self.n_rows, (i + 1) * w)) for i in ids.tolist()]
        )

    def buffer_permutation(self, seed: int, epoch: int, layout: _Layout, b: int) -> np.ndarray:
        size = int(layout.starts[b + 1] - layout.starts[b])
        return np.random.default_rng([_seed(seed), epoch, 1, b]).permutation(size)

    def epoch_rows(self, seed: int, epoch: int) -> np.ndarray:
        """(n_rows,) global row id at each stream position of the epoch (for tests)."""
        layout = self.layout(seed, epoch)
        parts = [
            self.buffer_rows(layout, b)[self.buffer_permutation(seed, epoch, layout, b)]
            for b in range(layout.n_buffers)
        ]
        return np.concatenate(parts)

    # -- reads ------------------------------------------------------------------------------
    def _load(self, seed: int, epoch: int, layout: _Layout, b: int) -> tuple[np.ndarray, Any]:
        """(rows of buffer b in read order (size, d_in) float32, its in-buffer permutation)."""
        ids = layout.windows[b * layout.per_buffer : (b + 1) * layout.per_buffer]
        sizes = self._window_sizes(ids)
        data = np.empty((int(sizes.sum()), self.reader.width), np.float32)
        w = self.plan.window_rows
        at = 0
        for i, size in zip(ids.tolist(), sizes.tolist(), strict=True):
            self.reader.read_into(i * w, i * w + size, data[at : at + size])
            at += size
        if not np.isfinite(data).all():
            starts = np.concatenate([[0], np.cumsum(sizes)])

            def global_row(r: int) -> int:
                j = int(np.searchsorted(starts, r, side="right")) - 1
                return int(ids[j]) * w + r - int(starts[j])

            _check_finite(data, self.reader.site, global_row)
        return data, self.buffer_permutation(seed, epoch, layout, b)

    def batches(
        self, batch_size: int, seed: int, epoch: int, start_batch: int = 0
    ) -> Generator[np.ndarray, None, None]:
        """(<= batch_size, d_in) float32 batches of epoch `epoch` from batch `start_batch` on;
        reads only the buffers those batches draw from (the next one in a background thread).
        At most two buffers are held: the one batches are taken from and the one being read."""
        layout = self.layout(seed, epoch)
        pos = start_batch * batch_size
        if pos >= self.n_rows:
            return
        b = int(np.searchsorted(layout.starts, pos, side="right")) - 1
        pending: _Read | None = None
        try:
            current: tuple[np.ndarray, np.ndarray] | None = self._load(seed, epoch, layout, b)
            pending = self._submit(seed, epoch, layout, b + 1)
            while pos < self.n_rows:
                end = min(self.n_rows, pos + batch_size)
                parts = []
                while pos < end:
                    if current is None:  # the previous buffer is used up: take the next
                        b += 1
                        current = (
                            pending.result() if pending else self._load(seed, epoch, layout, b)
                        )
                        pending = self._submit(seed, epoch, layout, b + 1)
                    lo, hi = int(layout.starts[b]), int(layout.starts[b + 1])
                    stop = min(end, hi)
                    parts.append(current[0][current[1][pos - lo : stop - lo]])
                    pos = stop
                    if pos == hi:
                        current = None  # free it before the next buffer is read
                yield parts[0] if len(parts) == 1 else np.concatenate(parts)
        finally:
            if pending is not None:
                pending.wait()  # a closed iterator leaves no read running

    def _submit(self, seed: int, epoch: int, layout: _Layout, b: int) -> _Read | None:
        """Buffer b read in a background thread (now, without prefetch); None past the last."""
        if b >= layout.n_buffers:
            return None
        return _Read(self._load, (seed, epoch, layout, b), background=self.prefetch)


class _Read:
    """One buffer read, in a daemon thread (or at once): `result()` waits for it and returns
    it, or raises what the read raised."""

    def __init__(self, fn: Any, args: tuple, background: bool = True):
        self._fn, self._args = fn, args
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="sae-prefetch", daemon=True)
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as e:  # handed to result()
            self._error = e

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def result(self) -> Any:
        self.wait()
        if self._error is not None:
            raise self._error
        value, self._value = self._value, None
        return value


def _check_finite(values: np.ndarray, site: str, global_row: Any) -> None:
    if not np.isfinite(values).all():
        row, dim = np.argwhere(~np.isfinite(values))[0]
        raise InputError(
            f"NaN/Inf in the activations of site {site!r} (store row {global_row(int(row))}, "
            f"dim {int(dim)}); an SAE needs finite inputs"
        )


# ------------------------------------------------------------------------------- choosing
def choose_order(
    source: Any,
    cap: int | None,
    batch_size: int,
    d_sae: int,
    n_params: int,
    saved: dict[str, Any] | None = None,
) -> PermutationOrder | BufferedOrder:
    """The data order of a run.

    - a saved order (from a checkpoint being resumed) is used when no cap is given;
    - arrays: the permutation order (rows are in memory already); a cap is still checked
      against one batch plus the SAE;
    - a store with a cap: the buffered order sized from the cap (`plan_stream`);
    - a store without a cap: the permutation order, unless the site's float32 rows exceed
      `AUTO_FRACTION` of the available memory: then buffered under a cap of that fraction.
    """
    d_in, n_rows = source.d_in, source.n_rows
    if cap is None and saved is not None:
        if saved.get("order") == "buffered" and source.array is None:
            plan = StreamPlan(int(saved["buffer_rows"]), int(saved["window_rows"]))
            return BufferedOrder(ShardReader(source.store, source.site), plan)
        if saved.get("order") == "permutation":
            return PermutationOrder(source)
    if source.array is not None:
        if cap is not None:
            check_cap(
                cap,
                model_bytes(n_params, d_sae) + batch_bytes(batch_size, d_in, d_sae),
                f"one batch of {batch_size} rows x d_in {d_in} and the SAE with d_sae "
                f"{d_sae} and its Adam state (the array itself is already in memory)",
            )
        return PermutationOrder(source)
    if cap is None:
        available = available_memory()
        if available is None or 4 * n_rows * d_in <= AUTO_FRACTION * available:
            return PermutationOrder(source)
        cap = int(AUTO_FRACTION * available)
    plan = plan_stream(cap, n_rows, d_in, d_sae, n_params, batch_size)
    return BufferedOrder(ShardReader(source.store, source.site), plan)
