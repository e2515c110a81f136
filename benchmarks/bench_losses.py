"""What one training step's worth of each loss costs (chapter 06): forward + backward of pixel, perceptual and
mixed loss for a batch of 8 faces at 112×112, the paper's batch and image size.

Each loss is timed with torch.utils.benchmark's `blocked_autorange` (median and interquartile range over repeated
blocks, after one warm-up step). The images are random values in [-1, 1]: the cost of dense convolutions does not
depend on the pixel values. The machine's load average at the start is recorded: on a shared machine it explains a lot.
Usage (offline, point CAE_COURSE_VGG16 at a local VGG16 state dict):
    python benchmarks/bench_losses.py [--threads 1]                     -> results/losses_cpu.json
    python benchmarks/bench_losses.py --device cuda --channels-last --bf16  -> results/losses_cuda_channels_last_bf16.json
"""
import argparse
import os

import torch
from common import save_result
from torch.utils.benchmark import Timer

from cae_course.losses import LOSSES, make_loss


def time_step(loss, pred, target, bf16: bool, min_run_time: float) -> dict:
    "Median and interquartile range (ms) of one `loss(pred, target).backward()`."
    def step():
        pred.grad = None
        with torch.autocast(pred.device.type, dtype=torch.bfloat16, enabled=bf16):
            value = loss(pred, target)
        value.backward()

    step()  # warm-up: first-call allocations, oneDNN/cuDNN algorithm choice
    m = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time)
    return {"median_ms": round(1e3 * m.median, 3), "iqr_ms": round(1e3 * m.iqr, 3),
            "steps_timed": len(m.times) * m.number_per_run}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--channels-last", action="store_true", help="channels_last images and VGG weights")
    p.add_argument("--bf16", action="store_true", help="run the losses under bf16 autocast")
    p.add_argument("--min-run-time", type=float, default=30.0, help="seconds of timing per loss")
    args = p.parse_args()

    load_at_start = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    target = (torch.rand(shape, generator=g) * 2 - 1).to(device, memory_format=fmt)
    pred = (torch.rand(shape, generator=g) * 2 - 1).to(device, memory_format=fmt).requires_grad_()
    results = {}
    for name in LOSSES:
        loss = make_loss(name).to(device, memory_format=fmt)
        results[name] = time_step(loss, pred, target, args.bf16, args.min_run_time)
        print(f"{name:<12}{results[name]['median_ms']:10.2f} ms (IQR {results[name]['iqr_ms']:.2f})", flush=True)

    variant = "".join(s for s, on in (("_channels_last", args.channels_last), ("_bf16", args.bf16)) if on)
    save_result(f"losses_{device.type}{variant}", {
        "task": f"forward + backward of each loss, batch {args.batch} at {args.size}x{args.size}, images in [-1, 1]",
        "device": str(device), "channels_last": args.channels_last, "bf16_autocast": args.bf16,
        "load_avg_1min_at_start": round(load_at_start, 2),
        "results": results,
    })


if __name__ == "__main__":
    main()
