"""Training throughput (images/s): the course's engine against a naive pipeline, measured in the same run.

Configurations (CAE; pixel loss and mixed loss ρ=1):
- naive:  fp32, a DataLoader that decodes the JPEGs from disk every epoch and blurs them on the CPU (per image);
- paper:  the course's engine in the paper's configuration (batch 8, fp32): faces already on the device, blur per batch;
- fast:   the course's engine with a large batch, bf16 autocast, channels-last and torch.compile (GPU only for bf16).

Every configuration runs the same model and the same number of images; the first steps are warm-up. On a GPU it also
reports the fraction of the card's bf16 peak from counted FLOPs (pass --peak-tflops, e.g. 989 for an H100 SXM dense bf16).

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_train.py [--images 512] [--fast-batch 256] [--compile]
"""
import argparse
import dataclasses
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import save_result
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cae_course.data import check_member, default_device, find_lfw, identity_of, load_lfw
from cae_course.losses import make_loss
from cae_course.models import count_flops
from cae_course.obfuscate import gaussian_blur
from cae_course.train import TrainConfig, autocast, build_model, make_batch


class JpegFaces(Dataset):
    "The naive way: open, decode, crop and blur one JPEG per item, every epoch, on the CPU."

    def __init__(self, files: list[Path], size: int):
        self.files, self.size = files, size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        img = Image.open(self.files[i]).convert("RGB")
        o = (img.width - self.size) // 2
        clean = torch.from_numpy(np.asarray(img.crop((o, o, o + self.size, o + self.size))).copy())
        clean = clean.permute(2, 0, 1).float() / 255
        blurred = gaussian_blur(clean[None])[0]
        return (blurred - 0.5) / 0.5, (clean - 0.5) / 0.5


def extract_some_jpegs(source: Path, n: int, dest: Path) -> list[Path]:
    "The first n LFW faces of an archive or folder, as JPEG files on disk (for the naive loader)."
    if source.is_dir():
        return sorted(p for p in source.rglob("*.jpg") if identity_of(p.relative_to(source).as_posix()))[:n]
    files = []
    with tarfile.open(source) as tar:
        for m in tar:
            check_member(m)
            if m.isfile() and identity_of(m.name):
                out = dest / f"{len(files):05d}.jpg"
                out.write_bytes(tar.extractfile(m).read())
                files.append(out)
                if len(files) == n:
                    break
    return files


def timed_steps(step, batches: int, warmup: int, device) -> float:
    "Seconds for `batches` calls of `step` after `warmup` calls, synchronising the device at both ends."
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(batches):
        step(warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def engine_throughput(cfg: TrainConfig, faces_u8: torch.Tensor, device, steps: int, warmup: int) -> dict:
    "Images/s of the course's training step (data already on the device)."
    torch.manual_seed(0)
    model = build_model(cfg, device)
    step_model = torch.compile(model) if cfg.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss, rho=cfg.rho if cfg.loss == "mixed" else None, weights=cfg.vgg16).to(device)
    images = faces_u8.to(device)
    n = len(images)

    def step(i):
        idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size, device=device) % n
        x, y = make_batch(images[idx], cfg)
        if cfg.channels_last and device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg):
            loss = loss_fn(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timed_steps(step, steps, warmup, device)
    flops = count_flops(lambda x: model(x), torch.zeros(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device))
    return {"images_per_s": steps * cfg.batch_size / seconds, "seconds": seconds, "steps": steps,
            "batch_size": cfg.batch_size, "model_forward_gflop_per_image": flops / cfg.batch_size / 1e9}


def naive_throughput(cfg: TrainConfig, files: list[Path], device, steps: int, warmup: int, workers: int) -> dict:
    "Images/s of the naive pipeline: JPEG decoding + CPU blur in a DataLoader, fp32 model."
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg, channels_last=False), device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss, rho=cfg.rho if cfg.loss == "mixed" else None, weights=cfg.vgg16).to(device)
    loader = DataLoader(JpegFaces(files, cfg.image_size), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                        drop_last=True)
    batches = iter(())

    def step(i):
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:  # a new epoch: the JPEGs are decoded again
            batches = iter(loader)
            x, y = next(batches)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timed_steps(step, steps, warmup, device)
    return {"images_per_s": steps * cfg.batch_size / seconds, "seconds": seconds, "steps": steps,
            "batch_size": cfg.batch_size, "loader_workers": workers}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64, help="images per measured configuration (per loss)")
    p.add_argument("--fast-batch", type=int, default=256, help="batch size of the fast configuration")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast configuration")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps before timing")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for the fraction")
    p.add_argument("--name", default=None, help="result file name (default: train_<device>)")
    args = p.parse_args()
    device = default_device()
    source = find_lfw()
    faces = load_lfw(source, progress=False).images[: max(args.images, args.fast_batch) * 2]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_some_jpegs(Path(source), len(faces), Path(tmp))
        for loss in ("pixel", "mixed"):
            paper = TrainConfig(loss=loss, bf16=False, channels_last=False)
            fast = TrainConfig(loss=loss, batch_size=args.fast_batch, bf16=True, channels_last=True, compile=args.compile)
            steps = max(1, args.images // paper.batch_size)
            fast_steps = max(1, args.images // fast.batch_size)
            r = {
                "naive": naive_throughput(paper, files, device, steps, args.warmup, workers=min(2, os.cpu_count())),
                "paper": engine_throughput(paper, faces, device, steps, args.warmup),
                "fast": engine_throughput(fast, faces, device, fast_steps, args.warmup),
            }
            r["paper_vs_naive"] = r["paper"]["images_per_s"] / r["naive"]["images_per_s"]
            r["fast_vs_naive"] = r["fast"]["images_per_s"] / r["naive"]["images_per_s"]
            if args.peak_tflops:
                achieved = 3 * r["fast"]["model_forward_gflop_per_image"] * r["fast"]["images_per_s"] / 1e3  # fwd+bwd ≈ 3× fwd
                r["fast_fraction_of_bf16_peak"] = achieved / args.peak_tflops
            results[f"cae_{loss}"] = r
            print(loss, {k: round(v["images_per_s"], 1) for k, v in r.items() if isinstance(v, dict)})
    epoch_s = 7620 / results["cae_pixel"]["paper"]["images_per_s"]
    save_result(args.name or f"train_{device.type}", {
        "device": str(device), "images_measured": args.images, "results": results,
        "paper_15_epochs_cae_pixel_s_estimate": 15 * epoch_s,
        "note": "fast config uses bf16/channels-last only on CUDA; on a CPU it differs from 'paper' by its batch size",
    })


if __name__ == "__main__":
    main()
