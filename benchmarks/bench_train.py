"""Training throughput (images/s) at the paper's configuration (CAE, batch 8, 112×112): a plain float32 step against
the course's engine, for the pixel loss and the mixed loss (ρ = 1, VGG16 relu2_2), measured in the same run.

- plain:   float32, NCHW, the textbook step on faces already in memory (what the course did on a CPU before);
- engine:  `cae_course.train.train_epoch` with the paper's `TrainConfig`: the precision and memory layout that
           `engine_mode` chooses for this device (bf16 autocast only on a GPU, an Intel CPU with AMX or an
           AMD CPU with AVX512-BF16; channels-last);
- fp32 / bf16 channels-last: the engine with `bf16=False` (float32 on any device) / with bf16 autocast forced on
  whatever the CPU, to show why `engine_mode` decides as it does (on a GPU the engine itself runs bf16);
- compiled: the engine with `torch.compile` (with --compile).

The CPU's relevant flags are printed and saved with the result. Targets (2-core CPU with AMX): engine ≥ 3.5× plain
for the pixel loss and ≥ 3× for the mixed loss, ≥ 55 img/s pixel and ≥ 13 img/s mixed. Where `engine_mode` does not
choose bf16 the engine runs float32 channels-last, and the script reports what that gives.

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_train.py [--steps 16] [--compile] [--device cpu]
       [--image-size 112] [--out benchmarks/results]   (`benchmarks/gpu_check.sh` runs it on CUDA, and tiny for CI)
"""
import argparse
import contextlib
import dataclasses
import time
from pathlib import Path
from unittest.mock import patch

import torch
from common import RESULTS, save_result

import cae_course.engine as engine
import cae_course.train as train
from cae_course.data import center_crop, default_device, load_lfw
from cae_course.losses import make_loss
from cae_course.config import TrainConfig
from cae_course.engine import engine_mode
from cae_course.train import EpochProgress, make_batch, train_epoch


def cpu_flags() -> dict:
    "What torch reports of this CPU's vector and matrix units."
    return {"vendor": engine.cpu_vendor(), "capability": torch.backends.cpu.get_cpu_capability(),
            **{name: bool(getattr(torch.cpu, f"_is_{name}_supported", lambda: None)())
               for name in ("avx512", "avx512_bf16", "amx_tile", "amx_fp16")}}


def plain_step(cfg: TrainConfig, device: torch.device):
    "The textbook float32 NCHW step: returns step(images) for a fresh, seeded model."
    torch.manual_seed(0)
    model = train.make_model(cfg.arch, image_size=cfg.image_size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss, rho=cfg.rho if cfg.loss == "mixed" else None, weights=cfg.vgg16).to(device)

    def step(images):
        x, y = make_batch(images, cfg)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def time_plain(cfg: TrainConfig, faces: torch.Tensor, device: torch.device, steps: int, warmup: int) -> float:
    "Seconds for `steps` plain steps after `warmup` of them."
    step = plain_step(cfg, device)
    batches = faces.split(cfg.batch_size)
    for b in batches[:warmup]:
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches[warmup:warmup + steps]:
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_engine(cfg: TrainConfig, faces: torch.Tensor, device: torch.device, steps: int, warmup: int,
                force_bf16: bool = False) -> float:
    """Seconds for one epoch of `steps` steps of the engine's `train_epoch`, after an epoch of `warmup` steps;
    `force_bf16` makes the engine take this CPU's bf16 as fast (`cfg.bf16` False forces float32 on any device)."""
    torch.manual_seed(0)
    model = train.build_model(cfg, device)
    step_model = torch.compile(model) if cfg.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = train.build_loss(cfg, device)
    run = lambda images: train_epoch(model, opt, loss_fn, images, cfg, EpochProgress(1), show_progress=False,
                                     step_model=step_model)
    with patch.object(engine, "cpu_bf16_is_fast", lambda: True) if force_bf16 else contextlib.nullcontext():
        run(faces[:warmup * cfg.batch_size])
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(faces[warmup * cfg.batch_size:(warmup + steps) * cfg.batch_size])
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=16, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before")
    p.add_argument("--compile", action="store_true", help="also time the engine under torch.compile")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the course's default device)")
    p.add_argument("--name", default=None, help="result file name (default: train_<device>)")
    p.add_argument("--image-size", type=int, default=112, help="crop side (the paper's: 112; smaller for a smoke run)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the result (default: benchmarks/results)")
    args = p.parse_args()
    device = torch.device(args.device or default_device())
    n = (args.steps + args.warmup) * 8
    faces = center_crop(load_lfw(progress=False).images[:n], args.image_size).contiguous().to(device)
    flags = cpu_flags()
    print("CPU:", flags)
    results = {}
    for loss in ("pixel", "mixed"):
        cfg = TrainConfig(loss=loss, image_size=args.image_size)  # the paper's configuration: batch 8, 112×112, lr 5e-4
        images = lambda seconds: round(args.steps * cfg.batch_size / seconds, 2)
        r = {"plain": images(time_plain(cfg, faces, device, args.steps, args.warmup)),
             "engine": images(time_engine(cfg, faces, device, args.steps, args.warmup)),
             "fp32_channels_last": images(time_engine(dataclasses.replace(cfg, bf16=False), faces, device, args.steps,
                                                      args.warmup)),
             "bf16_channels_last": images(time_engine(cfg, faces, device, args.steps, args.warmup, force_bf16=True))}
        if args.compile:
            r["engine_compiled"] = images(time_engine(dataclasses.replace(cfg, compile=True), faces, device,
                                                      args.steps, args.warmup))
        r = {"images_per_s": r, "engine_mode": engine_mode(device, cfg),
             "engine_vs_plain": round(r["engine"] / r["plain"], 2)}
        results[f"cae_{loss}"] = r
        print(loss, r)
    targets = {"engine_vs_plain_pixel": 3.5, "engine_vs_plain_mixed": 3.0, "pixel_images_per_s": 55, "mixed_images_per_s": 13}
    reached = {"engine_vs_plain_pixel": results["cae_pixel"]["engine_vs_plain"],
               "engine_vs_plain_mixed": results["cae_mixed"]["engine_vs_plain"],
               "pixel_images_per_s": results["cae_pixel"]["images_per_s"]["engine"],
               "mixed_images_per_s": results["cae_mixed"]["images_per_s"]["engine"]}
    save_result(args.name or f"train_{device.type}", {
        "device": str(device), "cpu_flags": flags, "steps": args.steps, "batch_size": 8, "image_size": args.image_size,
        "results": results, "targets_2core_amx": targets, "reached": reached,
        **({"paper_15_epochs_cae_pixel_hours": round(15 * 7620 / results["cae_pixel"]["images_per_s"]["engine"] / 3600, 2)}
           if args.image_size == 112 else {}),
    }, args.out)


if __name__ == "__main__":
    main()
