"""Shared helpers for the benchmark scripts: what machine ran them, and where their results go."""
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from cae_course.data import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    "The facts a reader needs to compare a result: CPU, cores, GPU, library versions, date."
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],  # other work on the machine while it ran
    }


def save_result(
    name: str,  # file name without .json
    result: dict,  # the measured numbers and what they mean
    folder: Path = RESULTS,  # benchmarks/results/, or the project's results/ for experiments
    show: bool = True,  # also print the JSON
) -> Path:
    "Write `result` with the command line and the machine facts first to <folder>/<name>.json."
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    scale = f"CAE_COURSE_SCALE={os.environ['CAE_COURSE_SCALE']} " if os.environ.get("CAE_COURSE_SCALE") else ""
    payload = {"command": scale + "python " + " ".join(sys.argv), "machine": machine_info(), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    if show:
        print(json.dumps(payload, indent=2))
    return path
