"""Steering vectors from learned dictionaries: an SAE latent's decoder row and a codebook code.

- `from_sae`: the decoder row W_dec[j] (d_in,) of a saved SAE (ours or SAELens's; the latent's
  direction in the site's activations: x_hat = b_dec + sum_j z_j W_dec[j], Bricken et al. 2023,
  "Towards Monosemanticity"; steering along it is "feature steering", Templeton et al. 2024).
- `from_codebook`: the code's codebook vector C_j (d,) at its site of a saved codebook model
  (Tamkin, Taufeeque, Goodman 2023); in a grouped codebook the code's group's slice of the
  site, zero elsewhere (`code_row`). A codebook layer replaces the site's output by the mean of
  its k chosen codes in the space of its LayerNorm's output, so C_j is a direction of that space;
  added to an unmodified model's activations it is the code's direction, not the exact
  intervention of forcing the code (`analyses.codebook.steer` forces codes).

Scale convention: both are unit-normalised by default (`unit=True`, the CLI's `--norm unit`),
like the probe directions `probes.directions` saves, so a steering coefficient counts in the
site's activation units for every dictionary and probe source; the row's own norm is kept in
the provenance (`raw_norm`) and `unit=False` (`--norm raw`) keeps it. Contrastive sources
(`extract.mean_difference`, `pca_difference`, `actadd`) keep their activation-unit size
(coefficient 1 = the difference itself).

Checks: the SAE's recorded site must be the site asked for, and, given a model handle, the site
must exist on the model with the width of the SAE's d_in / the codebook's width (each refusal
names both); a latent or code index outside the dictionary names the valid range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from analyses.steering.vectors import SteeringVector
from workbench.errors import InputError
from workbench.models.handle import ModelHandle


def site_width(handle: ModelHandle, site: str) -> int | None:
    """The last-dim width of `site`'s output on `handle` (one forward pass of the BOS token,
    `analyses.codebook.model.site_widths`), or None for a plain module (it needs its own
    inputs; `steer` checks the width when the vector is applied). An unknown site raises
    UnknownSiteError naming the closest ones."""
    from workbench.errors import UnknownSiteError, closest

    if site not in handle.sites():
        raise UnknownSiteError(
            f"model {handle.info.name!r} has no site {site!r}; closest: "
            f"{', '.join(closest(site, handle.sites()))}"
        )
    if not handle.is_language_model:
        return None
    from analyses.codebook.model import site_widths

    return site_widths(handle, [site])[site]


def check_width(handle: ModelHandle | None, site: str, width: int, what: str) -> None:
    """Refuse `what` (an SAE, a codebook) of `width` at `site` when `handle`'s site has another
    width, naming both."""
    if handle is None:
        return
    actual = site_width(handle, site)
    if actual is not None and actual != width:
        raise InputError(
            f"{what} reads width {width} at {site!r}, but model {handle.info.name!r} gives "
            f"width {actual} there; use a dictionary trained on this model's {site}"
        )


def _scaled(row: torch.Tensor, unit: bool) -> tuple[torch.Tensor, float]:
    row = row.detach().to("cpu", torch.float32)
    norm = float(row.norm())
    if norm == 0.0:
        return row, norm  # SteeringVector refuses the zero vector, naming the site
    return (row / norm if unit else row), norm


def _index(kind: str, index: int, size: int, where: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise InputError(
            f"{kind} {index!r} does not exist: {where} has {kind}s 0..{size - 1} ({size})"
        )


def from_sae(
    directory: str,
    latent: int,
    site: str | None = None,
    handle: ModelHandle | None = None,
    unit: bool = True,
) -> SteeringVector:
    """The decoder row W_dec[latent] (d_in,) of the SAE saved in `directory`, as a direction at
    the SAE's site (`site` must agree with the site it records; an SAE that records none takes
    `site`). `handle`: refuse a model whose site width is not d_in. `unit`: see the module."""
    from analyses.sae import load_sae
    from analyses.sae.io import sae_origin

    sae, meta = load_sae(directory)
    n_latents = int(sae.W_dec.shape[0])
    _index("latent", latent, n_latents, f"the SAE at {directory!r}")
    recorded = sae_origin(meta)["site"]
    if recorded and site and site != recorded:
        raise InputError(
            f"the SAE at {directory!r} was trained at site {recorded!r}, not {site!r}; its "
            f"latents are directions of {recorded}"
        )
    site = site or recorded
    if not site:
        raise InputError(f"the SAE at {directory!r} does not record its site: pass site=")
    check_width(handle, site, int(sae.d_in), f"the SAE at {directory!r} (d_in {sae.d_in})")
    vector, norm = _scaled(sae.W_dec[latent], unit)
    provenance: dict[str, Any] = {
        **meta,
        "sae": str(Path(directory).resolve()),
        "latent": latent,
        "d_sae": n_latents,
        "raw_norm": norm,
        "norm": "unit" if unit else "raw",
    }
    if handle is not None:
        provenance["steered_model"] = handle.info.name
    return SteeringVector(vector, site, "sae", provenance)


def code_row(layer: Any, code: int) -> tuple[torch.Tensor, int]:
    """((d,) the code's vector over the whole site, its group): in a grouped layer (G groups of
    `codes_per_group` codes over d / G dims each) group g = code // codes_per_group owns dims
    g d/G .. (g+1) d/G and the rest of the vector is zero."""
    groups = int(getattr(layer, "groups", 1))
    row = layer.codebook[code].detach()
    if groups == 1:
        return row, 0
    group = code // int(layer.codes_per_group)
    width = int(layer.d) // groups
    full = torch.zeros(int(layer.d), dtype=row.dtype)
    full[group * width : (group + 1) * width] = row
    return full, group


def from_codebook(
    folder: str,
    code: int,
    site: str | None = None,
    handle: ModelHandle | None = None,
    unit: bool = True,
) -> SteeringVector:
    """The codebook vector C_code (d,) at `site` (default: the model's only codebook site) of
    the codebook model saved in `folder` (`workbench codebook train --out`). `handle`: refuse a
    model whose site width is not the codebook's. `unit`: see the module."""
    from analyses.codebook.model import Codebooks

    books = Codebooks.load(folder)
    if site is None:
        if len(books.sites) != 1:
            raise InputError(
                f"the codebook model at {folder!r} has codebooks at {', '.join(books.sites)}: "
                "pass the site"
            )
        site = books.sites[0]
    layer = books.layer(site)  # an unknown site names the codebook sites
    _index("code", code, layer.n_codes, f"the codebook at {site} of {folder!r}")
    check_width(handle, site, int(layer.d), f"the codebook at {folder!r} (width {layer.d})")
    row, group = code_row(layer, code)
    vector, norm = _scaled(row, unit)
    provenance: dict[str, Any] = {
        "codebook": str(Path(folder).resolve()),
        "code": code,
        "group": group,
        "n_codes": layer.n_codes,
        "k": layer.k,
        "base": books.base,
        "space": "codebook LayerNorm output",
        "raw_norm": norm,
        "norm": "unit" if unit else "raw",
    }
    if handle is not None:
        provenance["steered_model"] = handle.info.name
    return SteeringVector(vector, site, "codebook", provenance)
