"""PSNR + SSIM of the 3,708 test faces against their blurred versions: cae_course.metrics (batched PyTorch) versus
scikit-image (one image at a time), both on the CPU, in the same run.

Target: ours ≥ 20× faster than scikit-image, with values equal to within 1e-4 dB and 1e-3 SSIM.
Each timing is the best of `--repeats` runs. scikit-image gets its inputs already as HWC NumPy arrays (not timed),
in float64 (the reference the tests use) and in float32 (its faster mode); the speed ratio is taken against the
faster of the two. Ours runs on float32 tensors with `--threads` torch threads (1 by default, like scikit-image),
for several values of `ssim`'s `batch_size`. The machine's load average is recorded too: on a shared machine it
explains a lot.
Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_metrics.py [--threads 1] [--repeats 3]
"""
import argparse
import os
import time

import numpy as np
import skimage
import torch
from common import save_result
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cae_course.data import load_lfw, split_indices
from cae_course.metrics import psnr, ssim
from cae_course.obfuscate import gaussian_blur

BATCH_SIZES = (4, 16, 64, 256)


def best_time(fn, repeats: int) -> tuple[float, object]:
    "The shortest of `repeats` wall-clock times of `fn()`, and its last result."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def ours(clean: torch.Tensor, blurred: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    "PSNR and SSIM of every image, SSIM filtering `batch_size` images at a time."
    return psnr(blurred, clean).numpy(), ssim(blurred, clean, batch_size=batch_size).numpy()


def scikit_image(clean: np.ndarray, blurred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    "PSNR and SSIM of every image with scikit-image, one image at a time, with the settings ours reproduces."
    p = [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(clean, blurred)]
    s = [structural_similarity(x, y, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False) for x, y in zip(clean, blurred)]
    return np.array(p), np.array(s)


def main(threads: int, repeats: int):
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    faces = load_lfw(progress=False)
    clean = faces.images[split_indices(len(faces))[2]].float() / 255
    blurred = torch.cat([gaussian_blur(x) for x in clean.split(256)])
    as_hwc = lambda t, dtype: np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy().astype(dtype))

    sk_times, sk_values = {}, {}
    for dtype in ("float64", "float32"):
        inputs = as_hwc(clean, dtype), as_hwc(blurred, dtype)
        sk_times[dtype], sk_values[dtype] = best_time(lambda: scikit_image(*inputs), repeats)
    sk_psnr, sk_ssim = sk_values["float64"]  # the reference
    our_times, our_values = {}, None
    for bs in BATCH_SIZES:
        our_times[bs], our_values = best_time(lambda: ours(clean, blurred, bs), repeats)
    our_psnr, our_ssim = our_values
    fastest_bs = min(our_times, key=our_times.get)
    sk_fastest = min(sk_times.values())
    save_result("metrics_cpu", {
        "task": "PSNR + SSIM of clean vs blurred (k=9, σ=4) test faces, [0, 1] range, 112×112 RGB",
        "images": len(clean),
        "skimage": skimage.__version__,
        "numpy": np.__version__,
        "skimage_s": {k: round(v, 3) for k, v in sk_times.items()},
        "ours_float32_s_by_batch_size": {str(k): round(v, 3) for k, v in our_times.items()},
        "ours_best_batch_size": fastest_bs,
        "speedup_vs_faster_skimage": round(sk_fastest / our_times[fastest_bs], 2),
        "speedup_by_batch_size": {str(k): round(sk_fastest / v, 2) for k, v in our_times.items()},
        "max_abs_diff_psnr_db": float(np.abs(our_psnr - sk_psnr).max()),
        "max_abs_diff_ssim": float(np.abs(our_ssim - sk_ssim).max()),
        "mean_psnr_db": float(our_psnr.mean()),
        "mean_ssim": float(our_ssim.mean()),
        "repeats": repeats,
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "targets": {"speedup": 20, "max_abs_diff_psnr_db": 1e-4, "max_abs_diff_ssim": 1e-3},
    })


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (scikit-image uses one)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method; the best counts")
    main(**vars(parser.parse_args()))
