"""Chapter 10's metric comparison: rank reconstruction models by PSNR, SSIM and LPIPS on the test split.

Uses the models that ship with the course (`cae_course.reproduce.pretrained`) when they are there, else trains small
ones with `fit` at the course scale (chapter 01's `course_scale()`: quick on a CPU, full on a GPU).

    python experiments/lpips_ranking.py     # quick scale, one CPU core: 2 min with the shipped models, 13 min training its own
    CAE_COURSE_SCALE=full python experiments/lpips_ranking.py   # all 3,708 test faces at 112×112: ~75 min on 2 cores (AMD EPYC, 2026-12-02, in two sittings)
    python experiments/lpips_ranking.py --faces 8                # a smoke test of the whole script

Writes results/lpips_ranking.json: per-image PSNR, SSIM and LPIPS of every model's reconstructions and of the
obfuscated inputs, their means, the command, the machine and the date. Trained models go to runs/lpips/<name>/.
Each set of images it scores is kept in ~/.cache/cae_course/lpips_ranking/, named by a hash of the images: a stopped
run, given again, skips what it already scored.
"""
import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import center_crop, course_scale, default_device, load_lfw, split_indices  # noqa: E402
from cae_course.lpips_metric import LPIPS  # noqa: E402
from cae_course.metrics import psnr, ssim  # noqa: E402
from cae_course.shipped import pretrained_info, pretrained_names  # noqa: E402
from cae_course.config import TrainConfig
from cae_course.train import fit, load_checkpoint, load_model, reconstruct  # noqa: E402

OWN_MODELS = ("cae-pixel-blur", "cae-perceptual-blur", "cae-mixed-blur", "cae-pixel-pixelate", "cae-mixed-pixelate")


def shipped_models(device) -> dict:
    "The course's shipped models as {name: (model, config, provenance)}; shipped models load by name like checkpoints."
    return {name: (*load_model(name, device), pretrained_info(name)["provenance"]) for name in pretrained_names()}


def own_models(device) -> dict:
    "Small models trained here with `fit` at the course scale (kept in runs/lpips/, reused when unchanged)."
    models = {}
    for name in OWN_MODELS:
        arch, loss, obfuscation = name.split("-")
        cfg = TrainConfig.for_scale(arch=arch, loss=loss, obfuscation=obfuscation)
        ckpt = ROOT / "runs" / "lpips" / name / "checkpoint.pt"
        if not (ckpt.exists() and load_checkpoint(ckpt)["config"] == dataclasses.asdict(cfg)):
            fit(cfg, out_dir=ckpt.parent, device=device, progress=False)
        model, _ = load_model(ckpt, device)
        models[name] = (model, cfg, f"trained by experiments/lpips_ranking.py at the {course_scale().name} scale")
    return models


CACHE = Path.home() / ".cache" / "cae_course" / "lpips_ranking"  # every scored set, so that a stopped run resumes


def images_hash(*images: torch.Tensor) -> str:
    "A short SHA-256 of the images' values: the same images, the same name."
    h = hashlib.sha256()
    for x in images:
        h.update(x.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def scores(lpips: LPIPS, restored: torch.Tensor, clean: torch.Tensor, bar: tqdm) -> dict:
    "Per-image PSNR (dB), SSIM and LPIPS of `restored` against `clean`, rounded for the JSON; `bar` counts the faces."
    cached = CACHE / f"{images_hash(restored, clean)}.json"
    if cached.exists():
        bar.update(len(clean))
        return json.loads(cached.read_text())
    values = {"psnr": [], "ssim": [], "lpips": []}
    with torch.no_grad():
        for r, c in zip(restored.split(256), clean.split(256)):
            for k, metric in (("psnr", psnr), ("ssim", ssim), ("lpips", lpips)):
                values[k] += [round(x, 5) for x in metric(r, c).tolist()]
            bar.update(len(r))
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.write_text(json.dumps(values))
    partial.replace(cached)  # atomic: a run stopped while writing leaves no half-written entry
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train our own small models even if shipped ones exist")
    parser.add_argument("--faces", type=int, default=None, help="score only the first n test faces (default: the "
                        "course scale's, all 3,708 at full scale)")
    args = parser.parse_args()
    device, started = default_device(), time.perf_counter()
    models = {} if args.train else shipped_models(device)
    models = models or own_models(device)
    faces = load_lfw(progress=False)
    _, _, test_idx = split_indices(len(faces))
    lpips = LPIPS().to(device)
    results, inputs = {}, {}
    n_faces = len(test_idx[:args.faces or course_scale().n_eval])
    n_inputs = len({(cfg.obfuscation, cfg.image_size) for _, cfg, _ in models.values()})
    bar = tqdm(total=n_faces * (len(models) + n_inputs), unit="face", desc="scoring")
    for name, (model, cfg, provenance) in models.items():
        images = center_crop(faces.images[test_idx[:n_faces]], cfg.image_size)
        clean, obfuscated, restored = reconstruct(model, images, cfg)
        key = (cfg.obfuscation, cfg.image_size)
        if key not in inputs:
            inputs[key] = scores(lpips, obfuscated, clean, bar)
        results[name] = {"obfuscation": cfg.obfuscation, "loss": cfg.loss, "rho": cfg.rho, "arch": cfg.arch,
                         "image_size": cfg.image_size, "provenance": provenance, **scores(lpips, restored, clean, bar)}
        bar.write(f"{name} {({k: round(sum(v) / len(v), 4) for k, v in results[name].items() if isinstance(v, list)})}")
    bar.close()
    for (obfuscation, size), values in inputs.items():
        results[f"{obfuscation} input"] = {"obfuscation": obfuscation, "loss": None, "rho": None, "arch": None,
                                           "image_size": size, "provenance": "the obfuscated face itself", **values}
    save_result("lpips_ranking", {
        "seconds": round(time.perf_counter() - started, 1),
        "faces": f"{'all' if n_faces == len(test_idx) else 'the first'} {n_faces:,} faces of the paper's test split (split_indices, seed 0), "
                 "centre-cropped to each model's image size",
        "lpips": "VGG16 with the lpips package's calibrated v0.1 linear heads (cae_course.metrics.LPIPS); lower is better",
        "models": results,
    }, folder=ROOT / "results", show=False)


if __name__ == "__main__":
    main()
