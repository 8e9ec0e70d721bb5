"""`Codebooks`: the codebook layers of one model (site -> `CodebookLayer`), built for a handle's
sites, spliced in with `insert`, saved and loaded as safetensors + JSON config (no pickle).

A saved folder holds `codebooks.safetensors` (every layer's state under `"<i>."`),
`codebook.json` (sites, widths, n_codes (all groups), codes_per_group, groups, k, the base model's
spec, training report; a folder without `groups` is one group) and, when the
model itself was finetuned, `model.safetensors` (the finetuned model parameters).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from analyses.codebook.layer import CodebookLayer, insert_codebooks
from workbench.errors import InputError

CONFIG_NAME = "codebook.json"
WEIGHTS_NAME = "codebooks.safetensors"
MODEL_WEIGHTS_NAME = "model.safetensors"


def site_widths(handle, sites: Sequence[str], example_input: Any = None) -> dict[str, int]:
    """The last-dim width of each site's output, from one forward pass on `example_input`
    (default for a language model: the BOS token alone)."""
    from workbench.hooks.intervene import Apply, intervene

    if example_input is None:
        if not handle.is_language_model:
            raise InputError("a plain torch model needs example_input to find its site widths")
        example_input = torch.zeros((1, 1), dtype=torch.long)
    widths: dict[str, int] = {}

    def recorder(site: str):
        def fn(x: torch.Tensor) -> torch.Tensor:
            widths[site] = int(x.shape[-1])
            return x

        return fn

    with intervene(handle, [Apply(s, recorder(s)) for s in sites]):
        handle.run(handle.prepare(example_input))
    missing = [s for s in sites if s not in widths]
    if missing:
        raise InputError(f"sites {missing} did not run in a forward pass; choose other sites")
    return widths


def base_spec(handle) -> str | None:
    """How to load `handle`'s model again: its zoo spec (`fsm-lm@1500`), else its folder, else
    None (a user's in-memory module)."""
    from workbench.zoo import recipes

    if handle.info.name.partition("@")[0] in recipes():
        return str(handle.info.name)
    return str(handle.info.location) if handle.info.location else None


class Codebooks(nn.Module):
    """One `CodebookLayer` per site, in site order.

    Args:
        widths: site -> width of its output's last dim.
        n_codes, k: codes per group and codes per token and group (every site alike).
        base: how to load the base model again (`"fsm-lm@1500"`, a folder...), or None.
        groups: codebooks per site, each over 1 / groups of the dims (`CodebookLayer`).

    Attributes:
        n_codes: codes per site in all groups (code ids 0..n_codes-1); codes_per_group.
    """

    def __init__(
        self, widths: dict[str, int], n_codes: int, k: int, base: str | None = None, seed: int = 0,
        groups: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        if not widths:
            raise InputError("no codebook sites given")
        self.sites = list(widths)
        self.k, self.base, self.groups = k, base, groups
        self.codes_per_group, self.n_codes = n_codes, n_codes * groups
        self.layers = nn.ModuleList(
            CodebookLayer(widths[s], n_codes, k, seed=seed + i, groups=groups)
            for i, s in enumerate(self.sites)
        )
        self.report: dict[str, Any] = {}

    @classmethod
    def for_handle(
        cls, handle, sites: str | Sequence[str], n_codes: int, k: int, seed: int = 0,
        example_input: Any = None, groups: int = 1,
    ) -> Codebooks:  # fmt: skip
        """Codebooks at `sites` (names or patterns) of `handle`, sized from one forward pass."""
        from workbench.sites.names import expand_sites

        names = expand_sites(handle.sites(), sites)
        books = cls(
            site_widths(handle, names, example_input), n_codes, k, base=base_spec(handle),
            seed=seed, groups=groups,
        )  # fmt: skip
        return books.to(handle.device)  # codes are made on the CPU (seeded), used on the model's

    def layer(self, site: str) -> CodebookLayer:
        if site not in self.sites:
            raise InputError(f"no codebook at site {site!r}; codebook sites: {self.sites}")
        return self.layers[self.sites.index(site)]  # type: ignore[return-value]

    def by_site(self) -> dict[str, CodebookLayer]:
        return {s: self.layer(s) for s in self.sites}

    @contextmanager
    def insert(self, handle) -> Iterator[Codebooks]:
        """Splice every layer into `handle` inside the block (see `insert_codebooks`)."""
        with insert_codebooks(handle, self.by_site()):
            yield self

    def last_ids(self) -> dict[str, torch.Tensor]:
        """site -> (..., k) code ids of the last forward pass."""
        out = {}
        for site, layer in self.by_site().items():
            if layer.last_ids is None:
                raise InputError("no forward pass has run through the codebooks yet")
            out[site] = layer.last_ids
        return out

    def config(self) -> dict[str, Any]:
        return {
            "sites": self.sites,
            "widths": {s: self.layer(s).d for s in self.sites},
            "n_codes": self.n_codes,
            "codes_per_group": self.codes_per_group,
            "groups": self.groups,
            "k": self.k,
            "base": self.base,
            "report": self.report,
        }

    def save(self, folder: str | Path, model: nn.Module | None = None) -> Path:
        """Write the codebooks (and the finetuned `model`'s parameters, if given) to `folder`;
        `codebook.json` last (through a temporary file), so a folder with it is complete."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # the config marks the folder complete: gone while the weights change, written last
        (folder / CONFIG_NAME).unlink(missing_ok=True)
        (folder / MODEL_WEIGHTS_NAME).unlink(missing_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME))
        if model is not None:
            params = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters()}
            save_file(params, str(folder / MODEL_WEIGHTS_NAME))
        partial = folder / f"{CONFIG_NAME}.partial"
        partial.write_text(json.dumps(self.config(), indent=2))
        partial.replace(folder / CONFIG_NAME)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Codebooks:
        """The codebooks saved in `folder` (see `load_codebook_model` for the model too)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"{str(folder)!r} holds no {CONFIG_NAME}; not a saved codebook model")
        cfg = json.loads((folder / CONFIG_NAME).read_text())
        groups = int(cfg.get("groups", 1))  # folders written before groups: one group
        per_group = int(cfg.get("codes_per_group", cfg["n_codes"] // groups))
        books = cls(cfg["widths"], per_group, cfg["k"], base=cfg.get("base"), groups=groups)
        books.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
        books.report = cfg.get("report", {})
        return books


def load_base_model(spec: str, zoo_root: str | Path | None = None, device: str = "cpu"):
    """Load a base model by spec: a zoo name (`fsm-lm`, `fsm-lm@STEP`) or anything `load_model`
    takes."""
    from workbench.models import load_model
    from workbench.zoo import load_series, recipes

    name, _, step = spec.partition("@")
    if name in recipes() and not Path(name).exists():
        series = load_series(name, zoo_root)
        return series.load(series.resolve_step(step or "last"), device=device, dtype="float32")
    return load_model(spec, device=device, dtype="float32")


def load_codebook_model(folder: str | Path, handle=None, zoo_root: str | Path | None = None):
    """(handle, codebooks) of a saved codebook model: the base model (loaded from the saved spec
    unless `handle` is given) with its finetuned parameters, if saved, and the codebooks."""
    from safetensors.torch import load_file

    folder = Path(folder)
    books = Codebooks.load(folder)
    if handle is None:
        if not books.base:
            raise InputError(f"{str(folder)!r} records no base model; pass the handle")
        handle = load_base_model(books.base, zoo_root)
    if (folder / MODEL_WEIGHTS_NAME).is_file():
        state = load_file(str(folder / MODEL_WEIGHTS_NAME))
        missing = set(state) - {n for n, _ in handle.model.named_parameters()}
        if missing:
            raise InputError(f"saved model parameters {sorted(missing)[:3]} do not fit this model")
        handle.model.load_state_dict(state, strict=False)
    return handle, books.to(handle.device)


class _LogitsModel:
    """The calling convention of `workbench.zoo.lm` (`model(input_ids=, attention_mask=).logits`)
    over a handle's model (a TransformerBridge returns the logits tensor itself), so that the
    zoo's own loss and metrics are reused unchanged."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def eval(self) -> None:
        self.model.eval()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.model(input_ids, attention_mask=attention_mask))


def lm_view(handle) -> Any:
    """`handle.model` called the way `workbench.zoo.lm.token_losses`/`evaluate` call a model."""
    if hasattr(handle.model, "hook_dict"):
        return _LogitsModel(handle.model)
    return handle.model


def encode_examples(handle, examples) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) (n, L) on the model's device: `[bos] + word ids`, right-padded, as the zoo
    LMs were trained."""
    from workbench.zoo.lm import encode

    ids, mask = encode(handle.tokenizer, [e.text for e in examples])
    return ids.to(handle.device), mask.to(handle.device)
