"""Hugging Face hub models by revision, and a hub repository's `step<N>` revisions as a series.

    load_model("EleutherAI/pythia-160m@step3000")   # revision step3000: a branch, tag or commit
    load_model("EleutherAI/pythia-160m@3000")       # the same: @N is stepN where the repo has it
    HubSeries("EleutherAI/pythia-160m").steps       # its cached step<N> revisions, ascending

Offline by default: revisions come from the local Hugging Face cache (`HF_HUB_CACHE`, else
`HF_HOME/hub`, as `huggingface_hub.constants` reads them), read only through huggingface_hub's
own cache API (`scan_cache_dir`, and `snapshot_download(local_files_only=True)` for a damaged
entry it cannot scan). With `allow_download=True` (`--allow-download`) a revision is fetched
with `snapshot_download(revision=...)` (PyTorch weights only, safetensors when the revision has
them) and a series lists the repository's refs as the Hub gives them (`HfApi.list_repo_refs`).

A snapshot is checked before it boots: `config.json` and every weight file must be there and
readable (a half download, a dangling link into `blobs/`, is refused naming the revision and the
file, with the command that re-fetches it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from workbench.errors import InputError, UnknownModelError
from workbench.models.boot import _boot_transformers
from workbench.models.series import CheckpointSeries
from workbench.models.weights import weight_files

if TYPE_CHECKING:
    from workbench.models.handle import ModelHandle

STEP_REF = re.compile(r"^step(\d+)$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: What is never fetched: other frameworks' weights and exports.
NOT_TORCH = ["*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.ot", "*.tflite", "*.gguf",
             "onnx/*", "openvino/*", "coreml/*", "tf_model*", "flax_model*", "rust_model*"]  # fmt: skip
#: Pickled weights, skipped when the revision also has safetensors.
PICKLES = ["*.bin", "*.pt", "*.pth", "*.ckpt"]
DOWNLOAD_HINT = "--allow-download (allow_download=True) fetches it from the Hub"
DOWNLOAD_OTHERS = "--allow-download (allow_download=True) fetches others from the Hub"


def cache_root() -> Path:
    """The Hugging Face hub cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`), read at call time."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def looks_like_hub_name(text: str) -> bool:
    """`ORG/NAME` or `NAME` (what a hub repository id looks like), without a revision."""
    parts = text.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") and "@" not in p for p in parts)


def split_revision(text: str) -> tuple[str, str | None]:
    """`ORG/NAME@REV` -> ("ORG/NAME", "REV"); no `@` -> (text, None). Repository ids hold no
    `@`, so the first one splits (a revision may hold `/`: `refs/pr/1`)."""
    repo_id, at, revision = text.partition("@")
    if at and not revision:
        raise InputError(
            f"{text!r} ends in '@' with no revision; valid: {repo_id}@step<N>, {repo_id}@<N>, "
            f"{repo_id}@<branch, tag or commit>"
        )
    return repo_id, (revision if at else None)


def _summary(names: list[str], limit: int = 12) -> str:
    if not names:
        return "none"
    shown = names if len(names) <= limit else [*names[: limit - 2], "...", names[-1]]
    extra = f" ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(shown) + extra


def _step_sorted(refs: list[str]) -> list[str]:
    """Ref names with step<N> refs in step order after the others (alphabetical)."""
    steps = sorted((int(m.group(1)), r) for r in refs if (m := STEP_REF.match(r)))
    return sorted(r for r in refs if not STEP_REF.match(r)) + [r for _, r in steps]


def _step_refs(refs: list[str]) -> dict[int, str]:
    """step -> ref name of the `step<N>` refs (`step16` wins over `step016` for step 16)."""
    out: dict[int, str] = {}
    for ref in sorted(refs):
        match = STEP_REF.match(ref)
        if match is None:
            continue
        step = int(match.group(1))
        if step not in out or ref == f"step{step}":
            out[step] = ref
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class CachedRepo:
    """What the Hugging Face cache holds of one model repository (from `scan_cache_dir`).

    Attributes:
        repo_id: `ORG/NAME`.
        path: the repository's cache folder.
        refs: ref name (branch or tag) -> commit hash.
        snapshots: commit hash -> its snapshot folder.
        damage: huggingface_hub's reasons for not scanning the entry (then refs/snapshots are
            empty): a dangling link into blobs/, a ref to a missing commit.
        incomplete: unfinished downloads (`blobs/*.incomplete`) of this repository.
    """

    repo_id: str
    path: Path
    refs: dict[str, str]
    snapshots: dict[str, Path]
    damage: tuple[str, ...] = ()
    incomplete: tuple[Path, ...] = ()

    def describe(self) -> str:
        """The cached revisions, for messages: refs (step refs in step order), then commits
        that no ref names."""
        named = set(self.refs.values())
        detached = sorted(c[:12] for c in self.snapshots if c not in named)
        text = _summary(_step_sorted(list(self.refs)))
        return text + (f"; commits without a ref: {', '.join(detached)}" if detached else "")

    def step_of(self, commit: str) -> int | None:
        """N when exactly one step<N> ref points at `commit`, else None."""
        steps = {s for s, r in _step_refs(list(self.refs)).items() if self.refs[r] == commit}
        return steps.pop() if len(steps) == 1 else None


def cached_repo(repo_id: str) -> CachedRepo | None:
    """The cache's view of model repository `repo_id`, or None when the cache has none of it."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound
    from huggingface_hub.file_download import repo_folder_name

    root = cache_root()
    try:
        info = scan_cache_dir(root)
    except (CacheNotFound, ValueError):  # no cache folder yet (or a file in its place)
        return None
    scanned = info.cache_dir or root.resolve()  # the resolved root: warnings name paths in it
    path = scanned / repo_folder_name(repo_id=repo_id, repo_type="model")
    incomplete = tuple(
        sorted(f.file_path for f in info.incomplete_files if path in f.file_path.parents)
    )
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            refs = {ref: rev.commit_hash for ref, rev in repo.refs.items()}
            snapshots = {rev.commit_hash: rev.snapshot_path for rev in repo.revisions}
            return CachedRepo(repo_id, repo.repo_path, refs, snapshots, (), incomplete)
    damage = tuple(str(w) for w in info.warnings if str(path) in str(w))
    if damage:
        return CachedRepo(repo_id, path, {}, {}, damage, incomplete)
    return None


@dataclass(frozen=True)
class Revision:
    """One resolved revision of a hub repository, ready to boot.

    Attributes:
        repo_id: `ORG/NAME`.
        revision: the ref or commit it was asked by, resolved (`@16` -> "step16").
        folder: the snapshot folder (config.json + weights).
        step: N when a step<N> ref names this commit (its `checkpoint_step`), else None.
    """

    repo_id: str
    revision: str
    folder: Path
    step: int | None

    @property
    def label(self) -> str:
        """`REPO@N` for a training step (as a local series names its checkpoints), else
        `REPO@REV`."""
        return f"{self.repo_id}@{self.step if self.step is not None else self.revision}"


def _refetch(repo_id: str, revision: str) -> str:
    return (
        f"re-fetch it with --allow-download (allow_download=True) or "
        f"`hf download {repo_id} --revision {revision}`"
    )


def check_snapshot(folder: Path, repo_id: str, revision: str, incomplete: tuple = ()) -> None:
    """Refuse a snapshot that cannot boot: no `config.json`, no weight file, a shard its index
    names but the snapshot lacks, or a link into `blobs/` whose blob is gone (a half download).
    The message names the revision, the missing files and how to re-fetch them."""
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    files = weight_files(folder) if folder.is_dir() else []
    missing += [f.name for f in files if not f.is_file()]  # is_file follows the link
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
            missing += [s for s in shards if not (folder / s).is_file() and s not in missing]
    if not files:
        missing.append("model.safetensors (no weight file at all)")
    if not missing:
        return
    note = (
        f"; the cache holds {len(incomplete)} unfinished download(s) of it (blobs/*.incomplete)"
        if incomplete
        else ""
    )
    raise InputError(
        f"revision {revision!r} of {repo_id!r} in the Hugging Face cache is incomplete (a half "
        f"download?): missing {', '.join(missing)} in {str(folder)!r}{note}; "
        + _refetch(repo_id, revision)
    )


def _match(repo: CachedRepo, revision: str) -> str:
    """The ref or commit of `repo` that `revision` names (see `resolve_cached`)."""
    if revision in repo.refs:
        return revision
    if COMMIT.match(revision) and revision in repo.snapshots:
        return revision
    if revision.isdigit():
        if f"step{revision}" in repo.refs:
            return f"step{revision}"
        raise UnknownModelError(
            f"'{repo.repo_id}@{revision}': neither revision step{revision} nor a ref "
            f"{revision!r} is in the Hugging Face cache; cached revisions: {repo.describe()}; "
            + DOWNLOAD_OTHERS
        )
    prefixes = [c for c in repo.snapshots if len(revision) >= 7 and c.startswith(revision)]
    if len(prefixes) == 1:
        return prefixes[0]
    raise UnknownModelError(
        f"revision {revision!r} of {repo.repo_id!r} is not in the Hugging Face cache "
        f"({str(cache_root())!r}); cached revisions: {repo.describe()}; " + DOWNLOAD_OTHERS
    )


def resolve_cached(repo_id: str, revision: str | None) -> Revision | None:
    """Revision `revision` (None: main) of `repo_id` from the local cache, checked complete;
    None when the cache holds nothing of `repo_id`.

    `revision`: a ref (branch or tag), a commit hash (or a unique prefix of 7+ hex digits), or
    digits N for ref stepN. Raises `UnknownModelError` naming the cached revisions when it is
    not cached, `InputError` when its snapshot is incomplete."""
    repo = cached_repo(repo_id)
    if repo is None:
        return None
    if repo.damage:
        return _resolve_damaged(repo, revision)
    name = _match(repo, revision or "main")
    commit = repo.refs.get(name, name)
    folder = repo.snapshots[commit]
    check_snapshot(folder, repo_id, name, repo.incomplete)
    step = repo.step_of(commit) if revision is not None else None
    return Revision(repo_id, name, folder, step)


def _resolve_damaged(repo: CachedRepo, revision: str | None) -> Revision:
    """A revision of an entry `scan_cache_dir` refused (a dangling link in some snapshot): found
    through `snapshot_download(local_files_only=True)`, then checked like any other."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    wanted = revision or "main"
    names = [f"step{wanted}", wanted] if wanted.isdigit() else [wanted]
    reasons = list(repo.damage)
    for name in names:
        try:
            folder = Path(
                snapshot_download(
                    repo.repo_id, revision=name, cache_dir=cache_root(), local_files_only=True
                )
            )
        except (LocalEntryNotFoundError, OSError, ValueError) as exc:  # incomplete ones too
            reasons.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        check_snapshot(folder, repo.repo_id, name, repo.incomplete)
        match = STEP_REF.match(name)
        step = int(match.group(1)) if match and revision is not None else None
        return Revision(repo.repo_id, name, folder, step)
    raise InputError(
        f"the Hugging Face cache entry of {repo.repo_id!r} is damaged and holds no revision "
        f"{wanted!r} ({'; '.join(reasons)}); " + _refetch(repo.repo_id, wanted)
    )


def hub_refs(repo_id: str) -> list[str]:
    """The branch and tag names of `repo_id` as the Hub lists them (network)."""
    from huggingface_hub import HfApi

    try:
        refs = HfApi().list_repo_refs(repo_id)
    except Exception as exc:  # not found, gated, offline: one clear error
        raise UnknownModelError(
            f"could not list the revisions of {repo_id!r} on the Hub: {exc}"
        ) from exc
    return [r.name for r in [*refs.branches, *refs.tags]]


def fetch(repo_id: str, revision: str | None) -> Revision:
    """Download revision `revision` (None: main; digits N: stepN where the Hub has it) of
    `repo_id` into the cache, then resolve it from there (`resolve_cached`)."""
    from huggingface_hub import HfApi, snapshot_download

    name = revision or "main"
    if name.isdigit():
        refs = hub_refs(repo_id)
        if f"step{name}" in refs:
            name = f"step{name}"
        elif name not in refs:
            raise UnknownModelError(
                f"'{repo_id}@{revision}': the Hub has neither revision step{revision} nor a ref "
                f"{revision!r}; step revisions there: {_summary(list(_step_refs(refs).values()))}"
            )
    try:
        files = HfApi().list_repo_files(repo_id, revision=name)
        safetensors = any(f.endswith(".safetensors") for f in files)
        snapshot_download(
            repo_id,
            revision=name,
            cache_dir=cache_root(),
            ignore_patterns=NOT_TORCH + (PICKLES if safetensors else []),
        )
    except Exception as exc:  # not found, gated, offline, disk full: one clear error
        raise UnknownModelError(f"could not fetch revision {name!r} of {repo_id!r}: {exc}") from exc
    resolved = resolve_cached(repo_id, name)
    if resolved is None:  # pragma: no cover - snapshot_download just wrote it
        raise UnknownModelError(
            f"revision {name!r} of {repo_id!r} is not in the cache after download"
        )
    return resolved


def resolve_revision(repo_id: str, revision: str | None, allow_download: bool) -> Revision | None:
    """`fetch` when downloads are allowed, else `resolve_cached` (None: not cached at all)."""
    return fetch(repo_id, revision) if allow_download else resolve_cached(repo_id, revision)


def load_hub_model(
    text: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    name: str | None,
    trust_remote_code: bool,
    allow_download: bool,
    checkpoint_step: int | None = None,
) -> ModelHandle | None:
    """Boot `ORG/NAME` or `ORG/NAME@REV` (see `resolve_cached`); None when it is not cached and
    downloads are off. A revision named by a step<N> ref gets `checkpoint_step` N and the name
    `ORG/NAME@N`; a plain name keeps its name and no step."""
    repo_id, revision = split_revision(text)
    resolved = resolve_revision(repo_id, revision, allow_download)
    if resolved is None:
        return None
    step = resolved.step if revision is not None else None  # a plain name: as before, no step
    return _boot_transformers(
        str(resolved.folder),
        source=f"{repo_id}@{resolved.revision}" if revision is not None else repo_id,
        name=name or (resolved.label if revision is not None else repo_id),
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        location=resolved.folder,
        checkpoint_step=checkpoint_step if checkpoint_step is not None else step,
    )


class HubSeries(CheckpointSeries):
    """The `step<N>` revisions of a hub repository as a checkpoint series (Pythia publishes its
    training checkpoints as branches `step0` ... `step143000`).

    Offline: the step revisions in the local cache. With `allow_download`: every step revision
    the Hub lists, each fetched when it is first loaded. Steps ascend; iteration loads one at a
    time, like a `CheckpointSeries`. `location(step)` is the revision's snapshot folder; `folder`
    is the repository's cache folder.
    """

    def __init__(
        self,
        repo_id: str,
        *,
        allow_download: bool = False,
        name: str | None = None,
        hub_refs_listed: list[str] | None = None,
        cached: CachedRepo | None = None,
    ) -> None:
        """`hub_refs_listed` / `cached`: the Hub's ref names / the cache's view of the
        repository, when the caller has them already (saves a listing or a scan)."""
        from huggingface_hub.file_download import repo_folder_name

        self.repo_id = repo_id
        self.allow_download = allow_download
        self.build = None
        self.name = name or repo_id
        self.folder = cache_root() / repo_folder_name(repo_id=repo_id, repo_type="model")
        self._repo: CachedRepo | None = None
        self._locations: dict[int, Path] = {}
        if allow_download:
            refs = hub_refs(repo_id) if hub_refs_listed is None else hub_refs_listed
            where = "on the Hub"
        else:
            self._repo = cached if cached is not None else cached_repo(repo_id)
            if self._repo is None:
                raise UnknownModelError(
                    f"{repo_id!r} is not in the Hugging Face cache ({str(cache_root())!r}); "
                    + DOWNLOAD_HINT
                )
            if self._repo.damage:
                raise InputError(
                    f"the Hugging Face cache entry of {repo_id!r} is damaged "
                    f"({'; '.join(self._repo.damage)}); re-fetch the series with "
                    f"--allow-download (allow_download=True), or remove the entry with "
                    f"`hf cache rm model/{repo_id}` and download it again"
                )
            refs = list(self._repo.refs)
            where = "in the Hugging Face cache"
        self._refs = _step_refs(refs)
        if not self._refs:
            raise InputError(
                f"{repo_id!r} is not a checkpoint series: it has no step<N> revisions {where}; "
                f"its revisions: {_summary(_step_sorted(refs))}. Load one with "
                f"'{repo_id}@REV' instead"
            )

    @property
    def _index(self) -> Mapping[int, object]:
        """step -> its `step<N>` ref name, ascending."""
        return self._refs

    def revision(self, step: int) -> str:
        """The ref name of `step` (`step16`)."""
        if step not in self._refs:
            raise InputError(
                f"no checkpoint at step {step} in hub series {self.repo_id!r}; steps: "
                + _summary([str(s) for s in self.steps])
            )
        return self._refs[step]

    def _check_step(self, step: int) -> None:
        """Steps are checked against the refs (resolving a step fetches nothing)."""
        self.revision(step)

    def location(self, step: int) -> Path:
        """The snapshot folder of `step`'s revision, checked complete (fetched first when
        downloads are allowed and it is not yet here)."""
        ref = self.revision(step)
        if step not in self._locations:
            if self.allow_download:
                folder = fetch(self.repo_id, ref).folder
            else:
                assert self._repo is not None
                folder = self._repo.snapshots[self._repo.refs[ref]]
                check_snapshot(folder, self.repo_id, ref, self._repo.incomplete)
            self._locations[step] = folder
        return self._locations[step]

    def _source(self, step: int, location: Path) -> str:
        """A hub checkpoint's source is `REPO@step<N>` (its name is `REPO@N`)."""
        return f"{self.repo_id}@{self._refs[step]}"

    def __repr__(self) -> str:
        return f"HubSeries({self.repo_id!r}, steps={_summary([str(s) for s in self.steps], 6)})"


def find_hub_series(repo_id: str, allow_download: bool = False) -> HubSeries | None:
    """The `HubSeries` of `repo_id` when it has step<N> revisions (in the cache; with
    `allow_download`, on the Hub), else None (not there, or a single model). A damaged cache
    entry raises (see `HubSeries`) rather than passing for a single model."""
    if not looks_like_hub_name(repo_id):
        return None
    if allow_download:
        try:
            refs = hub_refs(repo_id)
        except UnknownModelError:
            return None
        if not _step_refs(refs):
            return None
        return HubSeries(repo_id, allow_download=True, hub_refs_listed=refs)
    repo = cached_repo(repo_id)
    if repo is None or (not repo.damage and not _step_refs(list(repo.refs))):
        return None
    return HubSeries(repo_id, cached=repo)


def describe_cached(repo_id: str) -> str | None:
    """`repo_id`'s cached revisions, for messages (None when it is not cached)."""
    repo = cached_repo(repo_id)
    return None if repo is None else repo.describe()


__all__ = [
    "CachedRepo",
    "HubSeries",
    "Revision",
    "cached_repo",
    "check_snapshot",
    "fetch",
    "find_hub_series",
    "load_hub_model",
    "looks_like_hub_name",
    "resolve_cached",
    "split_revision",
]
