"""Chapter 02b's tuned constants: Wiener's balance, Richardson–Lucy's iterations and the back-projection steps,
chosen on validation faces only; and the estimators' accuracy on the wild suite, on validation faces too.

    python experiments/tune_classical.py     # 300 validation faces (Richardson–Lucy: 32): a few minutes on 2 cores

Every method sees the paper's obfuscations stored as 8 bits (blur k9 σ4; pixelation n = 8). The winners are the
constants WIENER_BALANCE, RL_ITERATIONS and BACKPROJECTION_STEPS of cae_course/classical.py (nbs/02b_classical.ipynb).
Writes results/classical_tuning.json: the mean PSNR/SSIM of every candidate, the winners, the estimators' hit rates
per suite setting, the command, the machine and the date.
"""
import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.classical import estimate_blur, estimate_grid, lanczos, richardson_lucy, wiener  # noqa: E402
from cae_course.data import denormalize, load_lfw, normalize, split_faces  # noqa: E402
from cae_course.metrics import psnr, ssim  # noqa: E402
from cae_course.obfuscate import gaussian_blur, pixelate  # noqa: E402
from cae_course.wild import WILD_SUITE, quantize8, wild_obfuscate  # noqa: E402


def score(restored: torch.Tensor, clean: torch.Tensor) -> dict:
    "Mean PSNR and SSIM on [0, 1]."
    a, b = denormalize(restored), denormalize(clean[:len(restored)])
    return {"psnr": round(psnr(a, b).mean().item(), 3), "ssim": round(ssim(a, b).mean().item(), 4)}


def sweep(name: str, values: list, restore) -> dict:
    "Score `restore(value)` for every value; the best by PSNR."
    rows = {}
    for v in values:
        rows[str(v)] = restore(v)
        print(f"{name} = {v}: {rows[str(v)]['psnr']:.2f} dB / {rows[str(v)]['ssim']:.3f}", flush=True)
    return {"candidates": rows, "best": max(rows, key=lambda v: rows[v]["psnr"])}


def estimator_accuracy(faces: torch.Tensor) -> dict:
    "Per wild setting: the share of faces whose grid (pixelation) or kernel (blur) the estimator names exactly, and |Δσ| ≤ 0.5."
    out = {}
    for setting in WILD_SUITE:
        x, truth = wild_obfuscate(faces, setting)
        if setting.kind == "pixelate":
            blocks, phases = estimate_grid(x)
            out[setting.name] = {"exact_grid": ((blocks == truth["block"]) & (phases == truth["phase"]).all(1)).float().mean().item()}
        else:
            est = estimate_blur(x)
            exact = (est[:, 0] == truth["kernel_size"]) & (est[:, 1] == truth["sigma"])
            paper = (est[:, 0] == 9) & (est[:, 1] == 4)
            close = ((est[:, 1] - truth["sigma"]).abs() <= 0.5) & (paper == (setting.kernel_size == 9))
            out[setting.name] = {"exact_kernel": exact.float().mean().item(), "sigma_within_0.5": close.float().mean().item()}
        print(setting.name, out[setting.name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="validation faces (default: %(default)s)")
    parser.add_argument("--n-rl", type=int, default=32, help="validation faces for Richardson–Lucy (default: %(default)s)")
    parser.add_argument("--n-estimate", type=int, default=64, help="validation faces per suite setting (default: %(default)s)")
    args = parser.parse_args()
    faces = split_faces(load_lfw(progress=False), "valid", args.n)
    clean = normalize(faces)
    blurred, mosaic = quantize8(gaussian_blur(clean)), quantize8(pixelate(clean, 8))
    result = {"split": "valid", "faces": len(clean), "inputs": "8-bit; blur k9 σ4 and pixelate n8",
              "input": {"blur": score(blurred, clean), "pixelate": score(mosaic, clean)}}
    result["wiener_balance"] = sweep("balance", [1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3],
                                     lambda b: score(wiener(blurred, balance=b), clean))
    result["rl_faces"] = args.n_rl
    result["rl_iterations"] = sweep("iterations", [10, 20, 40, 80, 160, 320],
                                    lambda k: score(richardson_lucy(blurred[:args.n_rl], iterations=k), clean))
    result["backprojection_steps"] = sweep("steps", [0, 1, 2, 3, 5, 10], lambda s: score(lanczos(mosaic, steps=s), clean))
    result["estimator_faces"] = args.n_estimate
    result["estimators"] = estimator_accuracy(faces[:args.n_estimate])
    save_result("classical_tuning", result, folder=ROOT / "results")


if __name__ == "__main__":
    main()
