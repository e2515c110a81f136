"""Why the engine flushes denormal floats (chapter 07): one training step of a late checkpoint of the paper-scale run,
whose weights and Adam moments hold many denormals, in three fresh processes: flag never set, set after PyTorch's
worker threads ran (it reaches only the calling thread), set before they start (they inherit it: what
`cae_course.train` does at import). Batch 8 @ 112, all cores, best of 5 steps.

Usage: python benchmarks/bench_denormals.py [checkpoint]   (default: the background reproduction's cae-pixel-blur)
"""
import subprocess
import sys
from pathlib import Path

from common import save_result

CHECKPOINT = Path.home() / ".cache" / "cae_course" / "reproduce" / "work" / "cae-pixel-blur" / "checkpoint.pt"
# Each case runs in a fresh process, so that its worker threads start under the flag that case gives them.
CHILD = """
import sys, time, torch
when, path = sys.argv[1], sys.argv[2]
from cae_course.config import TrainConfig
from cae_course.engine import to_layout  # sets the flag at import...
from cae_course.train import build_model, make_batch
torch.set_flush_denormal(when == "before threads start")  # ...so each case sets it its own way; no worker thread ran yet
ck = torch.load(path, map_location="cpu", weights_only=True)
cfg, cpu = TrainConfig(**ck["config"]), torch.device("cpu")
model = build_model(cfg, cpu)
model.load_state_dict(ck["model"])
opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
opt.load_state_dict(ck["optimizer"])
faces = torch.randint(0, 256, (8, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
x, y = make_batch(faces, cfg)  # blurred, clean
torch.nn.functional.mse_loss(model(to_layout(x, cpu, cfg)), y).backward()  # PyTorch's worker threads have now run
if when == "after threads ran":
    torch.set_flush_denormal(True)
times = []
for _ in range(5):
    t = time.perf_counter()
    loss = torch.nn.functional.mse_loss(model(to_layout(x, cpu, cfg)), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(min(times))
"""


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CHECKPOINT
    seconds = {}
    for when in ("never", "after threads ran", "before threads start"):
        out = subprocess.run([sys.executable, "-c", CHILD, when, str(path)], capture_output=True, text=True, check=True)
        seconds[when] = round(float(out.stdout.strip().splitlines()[-1]), 3)
        print(when, seconds[when], flush=True)
    save_result("denormals_cpu", {"checkpoint": str(path), "seconds_per_step_best_of_5": seconds,
                                  "speedup_flag_before_threads": round(seconds["never"] / seconds["before threads start"], 2)})


if __name__ == "__main__":
    main()
