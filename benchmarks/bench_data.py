"""How long LFW takes to become a tensor: building the uint8 cache from the archive, and loading it again.

Targets (issue 2): build ≤ 90 s for all 13,233 images on 2 cores; load ≤ 2 s.
Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_data.py
"""
import os
import tempfile
import time

from common import save_result

from cae_course.data import find_lfw, load_lfw


def main(load_repeats: int = 5):
    source = find_lfw()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CAE_COURSE_CACHE"] = cache  # a cold cache, so the build is measured
        t0 = time.perf_counter()
        faces = load_lfw(source, progress=False)
        build = time.perf_counter() - t0
        loads = []
        for _ in range(load_repeats):
            t0 = time.perf_counter()
            load_lfw(source, progress=False)
            loads.append(time.perf_counter() - t0)
    save_result("data_cpu", {
        "source": os.path.basename(source),
        "images": len(faces),
        "tensor_shape": list(faces.images.shape),
        "tensor_mb": faces.images.numel() / 2**20,
        "cache_build_s": round(build, 2),
        "cache_load_s_median": round(sorted(loads)[len(loads) // 2], 3),
        "cache_load_s_all": [round(t, 3) for t in loads],
        "targets": {"cache_build_s": 90, "cache_load_s": 2},
    })


if __name__ == "__main__":
    main()
