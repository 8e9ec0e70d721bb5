"""JumpReLU SAEs between SAELens and us, both ways (issue 22, item 4).

1. Ours -> SAELens: a JumpReLU SAE trained by `workbench sae train --arch jumprelu` (CLI
   defaults, planted data) is exported with `save_saelens`; SAELens's `SAE.load_from_disk`
   loads it as a `JumpReLUSAE` and its `encode`/`forward` on the same rows are compared with
   ours.
2. SAELens -> ours: SAELens builds a `JumpReLUSAE` with random weights and thresholds and
   saves it with `save_model`; `analyses.sae.load_sae` loads it and the outputs are compared.

sae-lens cannot share our environment (transformer-lens < 4); the SAELens side runs in
`benchmarks/out/venv-saelens` (made by `benchmarks/bench_sae.py`). Without it the script says
so and exits 2. Run from the repository root::

    python benchmarks/check_saelens_jumprelu.py [--json]

Prints the largest absolute differences; exits 1 when one exceeds 1e-5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAELENS_PYTHON = HERE / "out" / "venv-saelens" / "bin" / "python"
TOLERANCE = 1e-5

# Run in the SAELens venv: argv[1] = JSON {"mode", "dir", "rows"}; prints one JSON line.
SAELENS_CHILD = r"""
import json, sys
import numpy as np, torch
from sae_lens import SAE
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
args = json.loads(sys.argv[1])
x = torch.from_numpy(np.load(args["rows"]))
if args["mode"] == "make":
    torch.manual_seed(0)
    d_in = x.shape[1]
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=4 * d_in))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        sae.threshold.copy_(torch.rand(4 * d_in) * 0.5)
    sae.save_model(args["dir"])
else:
    sae = SAE.load_from_disk(args["dir"])
with torch.no_grad():
    z, x_hat = sae.encode(x), sae(x)
print(json.dumps({"class": type(sae).__name__, "arch": sae.cfg.architecture(),
                  "z": z.tolist(), "x_hat": x_hat.tolist()}))
"""


def saelens(mode: str, directory: Path, rows: Path) -> dict:
    payload = json.dumps({"mode": mode, "dir": str(directory), "rows": str(rows)})
    done = subprocess.run(
        [str(SAELENS_PYTHON), "-c", SAELENS_CHILD, payload],
        capture_output=True,
        text=True,
        check=False,
        env={"WANDB_MODE": "disabled", "PATH": "/usr/bin:/bin"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the SAELens side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(work: Path) -> dict:
    """Both directions in `work`; returns the differences and what SAELens built."""
    import torch

    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest on a shared machine
    sys.path.insert(0, str(HERE.parent))
    from analyses.sae import load_sae, save_saelens
    from workbench.cli.main import main as workbench

    rng = np.random.default_rng(0)
    directions = rng.standard_normal((48, 24))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    coef = (rng.random((4000, 48)) < 3 / 48) * rng.uniform(0.5, 2.0, (4000, 48))
    x = (coef @ directions).astype(np.float32)
    np.save(work / "x.npy", x)
    rows = work / "rows.npy"
    np.save(rows, x[:256])
    code = workbench(
        ["sae", "train", "--acts", str(work / "x.npy"), "--out", str(work / "ours"),
         "--arch", "jumprelu", "--saelens", "--json"]
    )  # fmt: skip
    if code != 0:
        raise RuntimeError("workbench sae train --arch jumprelu failed")
    ours, _ = load_sae(work / "ours")
    theirs = saelens("load", work / "ours" / "saelens", rows)
    xt = torch.from_numpy(x[:256])
    with torch.no_grad():
        z, x_hat = ours.encode(xt).numpy(), ours(xt).numpy()
    result = {
        "ours_to_saelens": {
            "saelens_class": theirs["class"],
            "architecture": theirs["arch"],
            "max_abs_diff_z": float(np.abs(np.asarray(theirs["z"]) - z).max()),
            "max_abs_diff_x_hat": float(np.abs(np.asarray(theirs["x_hat"]) - x_hat).max()),
            "l0": float((z > 0).sum(1).mean()),
        }
    }
    made = saelens("make", work / "theirs", rows)
    loaded, meta = load_sae(work / "theirs")
    save_saelens(loaded, work / "again", meta)  # and ours writes it back the same
    with torch.no_grad():
        z, x_hat = loaded.encode(xt).numpy(), loaded(xt).numpy()
    result["saelens_to_ours"] = {
        "our_architecture": loaded.config.architecture,
        "max_abs_diff_z": float(np.abs(np.asarray(made["z"]) - z).max()),
        "max_abs_diff_x_hat": float(np.abs(np.asarray(made["x_hat"]) - x_hat).max()),
        "l0": float((z > 0).sum(1).mean()),
    }
    again = saelens("load", work / "again", rows)
    result["saelens_to_ours"]["rewritten_max_abs_diff_x_hat"] = float(
        np.abs(np.asarray(again["x_hat"]) - np.asarray(made["x_hat"])).max()
    )
    return result


def worst(result: dict) -> float:
    return max(v for side in result.values() for k, v in side.items() if k.startswith("max_abs"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not SAELENS_PYTHON.is_file():
        print(f"no SAELens venv at {SAELENS_PYTHON} (benchmarks/bench_sae.py makes it)")
        return 2
    with tempfile.TemporaryDirectory(prefix="jumprelu-saelens-") as tmp:
        result = check(Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        for side, values in result.items():
            print(side)
            for key, value in values.items():
                print(f"  {key:<32}{value}")
    return 0 if worst(result) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
