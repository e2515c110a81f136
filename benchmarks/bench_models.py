"""Forward+backward time and peak memory of one training step, for every model with every loss.

Batch of 8 at 112×112 (the paper's configuration), one Adam step included. Each (model, loss) pair runs in a fresh
subprocess, so that its peak resident memory (CPU) or peak allocated memory (GPU) is its own. The paper reports
ResCAE epochs about 30 % slower than the CAE's, and the perceptual loss 2–3× slower per epoch: the ratios of our
medians are set beside those.

Usage: CAE_COURSE_VGG16=path/to/vgg16_features.pth python benchmarks/bench_models.py [--repeats 5] [--device cpu]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import save_result

from cae_course.data import default_device


def measure(arch: str, loss: str, device: str, repeats: int, batch: int = 8, size: int = 112) -> dict:
    "Median seconds of a training step and the peak memory, measured in this process."
    from cae_course.losses import make_loss
    from cae_course.models import count_parameters, make_model

    dev = torch.device(device)
    torch.manual_seed(0)
    model = make_model(arch, image_size=size).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=1e-5)
    loss_fn = make_loss(loss).to(dev)
    x, y = torch.rand(batch, 3, size, size, device=dev) * 2 - 1, torch.rand(batch, 3, size, size, device=dev) * 2 - 1
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(repeats + 1):  # the first step is a warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        total = loss_fn(model(x), y) + model.extra_loss()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    memory = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"arch": arch, "loss": loss, "step_s_median": statistics.median(times), "step_s_all": times,
            "parameters": count_parameters(model), "peak_memory_mb": memory,
            "memory_kind": "peak allocated (CUDA)" if dev.type == "cuda" else "peak resident set of the process",
            "rss_after_setup_mb": rss_before / 1024}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=str(default_device()))
    p.add_argument("--one", nargs=2, metavar=("ARCH", "LOSS"), help=argparse.SUPPRESS)  # the subprocess's job
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.device, args.repeats)))
        return
    from cae_course.models import MODELS

    rows = []
    for arch in MODELS:
        for loss in ("pixel", "perceptual", "mixed"):
            out = subprocess.run([sys.executable, __file__, "--one", arch, loss, "--device", args.device,
                                  "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{arch:8s} {loss:10s} {rows[-1]['step_s_median'] * 1e3:8.1f} ms  {rows[-1]['peak_memory_mb']:7.0f} MB")
    t = {(r["arch"], r["loss"]): r["step_s_median"] for r in rows}
    ratios = {
        "rescae_vs_cae_pixel": {"ours": t["rescae", "pixel"] / t["cae", "pixel"], "paper": "about 1.3 (per epoch)"},
        "perceptual_vs_pixel_cae": {"ours": t["cae", "perceptual"] / t["cae", "pixel"], "paper": "2-3 (per epoch)"},
        "mixed_vs_pixel_cae": {"ours": t["cae", "mixed"] / t["cae", "pixel"], "paper": "not reported"},
    }
    for k, v in ratios.items():
        print(f"{k}: {v['ours']:.2f} (paper: {v['paper']})")
    save_result(f"models_losses_{torch.device(args.device).type}", {
        "batch": 8, "image_size": 112, "device": args.device, "rows": rows, "ratios": ratios,
        "note": "a step = forward, loss, backward and one Adam step; the first step is a warm-up and not counted. "
                "An epoch also has data handling and validation, so per-step ratios bound the paper's per-epoch ones.",
    })


if __name__ == "__main__":
    main()
