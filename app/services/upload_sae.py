"""Import an uploaded SAE into RUNS/sae/uploads/NAME: one zip, or a JSON config and a
safetensors file, in our format or SAELens's (told by the config).

What this module holds: reading a zip in memory (`read_zip`: member names checked against
traversal, at most `uploads.ZIP_MAX_MEMBERS` files, the declared unpacked size against the
limit against zip bombs, nothing extracted by name), picking the config and weights out of the
upload, checking the config's dimensions against the weights' header before anything is
loaded, and `import_sae`. The shared machinery (names, size checks, staging, provenance,
`Imported`) and the limits live in `workbench_app.services.uploads`; this module imports from it, never the
other way round.

The limits are read as `uploads.SAE_LIMIT` etc. at call time, not imported by name: they have
one home, and a test that lowers `uploads.SAE_LIMIT` lowers the limit this module applies.

Layering: like `workbench_app.services.uploads`, this never imports `analyses`; the caller passes the SAE
loader (the app: `analyses.sae.load_sae`).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.errors import InputError
from workbench_app.services import uploads
from workbench_app.services.uploads import (
    SAE_FORMATS,
    SAES_DIR,
    Imported,
    MiB,
    _provenance,
    _refuse_existing,
    _root,
    _staging,
    _stem,
    _suffix,
    check_size,
    upload_name,
)

# The SAE file names `analyses.sae.io` reads (the core may not import it; the round-trip test
# through `load_sae` keeps these in step): ours, then SAELens's.
SAE_FILES = {"workbench": ("config.json", "sae.safetensors")}
SAE_FILES["saelens"] = ("cfg.json", "sae_weights.safetensors")

LoadSAE = Callable[[Path], Any]


def _member_name(name: str, archive: str) -> str:
    """The base name of a zip member; InputError for absolute, `..` or deep paths."""
    path = PurePosixPath(name)
    if (
        "\\" in name
        or ":" in name
        or "\0" in name
        or path.is_absolute()
        or any(part in ("..", ".", "") for part in path.parts)
        or len(path.parts) > 2
    ):
        raise InputError(
            f"{archive!r}: refusing member {name!r}: members must be plain files at the top or "
            "in one folder (no absolute paths, no '..')"
        )
    return path.name


def read_zip(data: bytes, filename: str) -> dict[str, bytes]:
    """Base name -> bytes of a zip's files, never extracted to disk by their names. Refused:
    bad member names, more than `uploads.ZIP_MAX_MEMBERS` files, a declared uncompressed size
    over `uploads.SAE_LIMIT`, encrypted members. A header that understates a member's size cannot
    get more past the limit: `zipfile` stops each member at its declared size, and the cut-short
    member then fails its CRC check (refused as unreadable)."""
    limit = uploads.SAE_LIMIT
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InputError(f"{filename!r} is not a readable zip file: {exc}") from exc
    with archive:
        infos = [
            i
            for i in archive.infolist()
            if not i.is_dir() and not i.filename.startswith("__MACOSX/")
        ]
        if len(infos) > uploads.ZIP_MAX_MEMBERS:
            raise InputError(
                f"{filename!r} holds {len(infos)} files; at most {uploads.ZIP_MAX_MEMBERS}"
            )
        names = [_member_name(i.filename, filename) for i in infos]
        if len(set(names)) != len(names):
            raise InputError(f"{filename!r} holds several files of one name: {sorted(names)}")
        declared = sum(i.file_size for i in infos)
        if declared > limit:
            raise InputError(
                f"{filename!r} unpacks to {declared / MiB:.1f} MiB; the limit is "
                f"{limit / MiB:g} MiB"
            )
        members = {}
        for info, base in zip(infos, names, strict=True):
            try:
                members[base] = archive.read(info)
            except (RuntimeError, zipfile.BadZipFile, NotImplementedError, OSError) as exc:
                raise InputError(
                    f"{filename!r}: cannot read member {info.filename!r}: {exc}"
                ) from exc
    return members


def _sae_members(files: Sequence[tuple[str, bytes]]) -> tuple[dict[str, bytes], str]:
    """(base name -> bytes of the config and the weights, a label for messages)."""
    if not files:
        raise InputError("no SAE files given: upload a .zip, or a .json config and a .safetensors")
    for filename, _ in files:
        _suffix(filename, SAE_FORMATS, "an SAE")
    check_size(
        " + ".join(n for n, _ in files), sum(len(d) for _, d in files), uploads.SAE_LIMIT, "SAE"
    )
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        return read_zip(files[0][1], files[0][0]), files[0][0]
    if any(n.lower().endswith(".zip") for n, _ in files):
        raise InputError("upload either one .zip or a .json config and a .safetensors, not both")
    return {re.split(r"[\\/]", n)[-1]: d for n, d in files}, " + ".join(n for n, _ in files)


def _sae_pair(members: dict[str, bytes], label: str) -> tuple[dict[str, Any], bytes, str, bytes]:
    """(config, config bytes, format name, weights bytes): exactly one .json and one
    .safetensors, the format told by the config (ours has format "workbench-sae")."""
    configs = [n for n in members if n.lower().endswith(".json")]
    weights = [n for n in members if n.lower().endswith(".safetensors")]
    others = sorted(set(members) - set(configs) - set(weights))
    if len(configs) != 1 or len(weights) != 1 or others:
        raise InputError(
            f"{label}: an SAE is one JSON config and one safetensors file (ours: "
            f"{' + '.join(SAE_FILES['workbench'])}; SAELens: {' + '.join(SAE_FILES['saelens'])}); "
            f"got {sorted(members)}"
        )
    raw = members[configs[0]]
    check_size(configs[0], len(raw), uploads.SAE_CONFIG_LIMIT, "SAE config")
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{configs[0]!r} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InputError(f"{configs[0]!r} must hold a JSON object")
    if config.get("format") == "workbench-sae":
        kind, dims = "workbench", config.get("config")
    elif "architecture" in config and "d_in" in config:
        kind, dims = "saelens", config
    else:
        raise InputError(
            f"{configs[0]!r} is neither a workbench SAE config (format 'workbench-sae') nor a "
            "SAELens cfg.json (architecture, d_in, d_sae)"
        )
    if not isinstance(dims, dict) or not all(
        isinstance(dims.get(k), int) and dims[k] > 0 for k in ("d_in", "d_sae")
    ):
        raise InputError(f"{configs[0]!r}: d_in and d_sae must be positive integers")
    return config, raw, kind, members[weights[0]]


def _check_weight_shapes(path: Path, config: dict[str, Any], kind: str) -> None:
    """W_enc's shape in the file's header matches the config's (d_in, d_sae), before the loader
    builds a module of the config's size (a config may not make it allocate more)."""
    from safetensors import safe_open

    dims = config["config"] if kind == "workbench" else config
    expected = [dims["d_in"], dims["d_sae"]]
    try:
        with safe_open(str(path), framework="numpy") as fh:
            names = set(fh.keys())
            shape = fh.get_slice("W_enc").get_shape() if "W_enc" in names else None
    except Exception as exc:  # SafetensorError: bad header
        raise InputError(f"the SAE weights are not a readable safetensors file: {exc}") from exc
    if shape is None:
        raise InputError("the SAE weights hold no W_enc tensor")
    if list(shape) != expected:
        raise InputError(f"W_enc has shape {tuple(shape)}; the config says {tuple(expected)}")


def import_sae(
    files: Sequence[tuple[str, bytes]],
    *,
    load: LoadSAE,
    runs: str | os.PathLike | None = None,
    name: str | None = None,
) -> Imported:
    """Save an uploaded SAE at RUNS/sae/uploads/NAME: `files` are (file name, bytes): one zip,
    or a JSON config and a safetensors file, in our format or SAELens's (told by the config).

    load(directory): the SAE loader that validates it (the app passes `analyses.sae.load_sae`);
    anything it raises refuses the upload. The files are written under the names the loader
    reads, beside `upload.json` (where they came from).
    """
    members, label = _sae_members(files)
    config, raw_config, kind, weights = _sae_pair(members, label)
    name = upload_name(name or _stem(files[0][0]))
    root = _root(runs)
    relative = f"{SAES_DIR}/{name}"
    target = root / relative
    _refuse_existing(target, relative)
    with _staging(target.parent, name) as folder:
        sae_dir = folder / "sae"
        sae_dir.mkdir()
        config_name, weights_name = SAE_FILES[kind]
        (sae_dir / weights_name).write_bytes(weights)
        _check_weight_shapes(sae_dir / weights_name, config, kind)
        (sae_dir / config_name).write_bytes(raw_config)
        try:
            load(sae_dir)
        except InputError as exc:
            raise InputError(f"{label}: not a loadable SAE: {exc}") from exc
        except Exception as exc:  # the loader's own errors on malformed content
            raise InputError(f"{label}: not a loadable SAE ({type(exc).__name__}: {exc})") from exc
        record = _provenance(label, b"".join(members[n] for n in sorted(members)))
        (sae_dir / "upload.json").write_text(json.dumps({**record, "format": kind}, indent=2))
        _refuse_existing(target, relative)
        os.rename(sae_dir, target)
    dims = config["config"] if kind == "workbench" else config
    # the architecture as the file names it (SAELens: standard, topk, jumprelu; ours: relu,
    # topk, batchtopk, jumprelu)
    details = {
        "format": kind,
        "architecture": config.get("architecture"),
        "d_in": dims["d_in"],
        "d_sae": dims["d_sae"],
    }
    return Imported("sae", name, target, relative, details)
