"""What a trained VCAE's latent carries: its validation PSNR/SSIM (decoding the mean μ, as in evaluation), the KL per
latent element, the mean latent noise σ and the spread of μ, from a training checkpoint. A KL near 0 with σ near 1
and a small std(μ) is a collapsed posterior: the decoder gets mostly noise and can only paint an average face.

Adds (or replaces) one entry, under --label, in results/vcae_latent.json, with the checkpoint's epoch, step and
training history, the command, the machine and the date.

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python experiments/vcae_latent.py CHECKPOINT --label beta1 [--faces 512]
"""
import argparse
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine_info  # noqa: E402

from cae_course.checkpoint import load_checkpoint  # noqa: E402
from cae_course.data import load_lfw, split_faces  # noqa: E402
from cae_course.models import kl_to_standard_normal  # noqa: E402
from cae_course.storage import read_json, write_json  # noqa: E402
from cae_course.train import evaluate, load_model, make_batch  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a VCAE checkpoint written by fit")
    parser.add_argument("--label", required=True, help="the entry's name in results/vcae_latent.json")
    parser.add_argument("--faces", type=int, default=512, help="validation faces to measure on")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint, arch="vcae")
    model, cfg = load_model(args.checkpoint, "cpu")
    faces = split_faces(load_lfw(progress=False), "valid", args.faces, cfg.image_size, cfg.seed)
    scores = evaluate(model, faces, cfg)
    with torch.no_grad():
        mu, logvar = model.distribution(make_batch(faces, cfg)[0])
    entry = {
        "checkpoint": {"epochs_done": ckpt["epoch"], "steps_into_next": ckpt.get("partial", {}).get("step", 0),
                       "beta": cfg.beta, "history": ckpt["history"]},
        "valid_faces": len(faces), "valid": scores,
        "latent": {"kl_per_element": kl_to_standard_normal(mu, logvar).item(),
                   "mean_sigma": (0.5 * logvar).exp().mean().item(), "std_mu": mu.std().item()},
        "command": shlex.join(["python", "experiments/vcae_latent.py", *sys.argv[1:]]), "machine": machine_info(),
    }
    out = ROOT / "results" / "vcae_latent.json"
    write_json({**read_json(out, {}), args.label: entry}, out)
    print(args.label, {k: round(v, 3) for k, v in scores.items()}, {k: round(v, 4) for k, v in entry["latent"].items()})


if __name__ == "__main__":
    main()
