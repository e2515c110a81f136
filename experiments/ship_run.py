"""Ship a finished full-scale training run beyond the paper's eight (chapter 09c's `pack_run`): its 8-bit model into
cae_course/weights/ with its test scores and provenance, and its per-epoch history into results/<name>/.

    python experiments/ship_run.py ~/.cache/cae_course/runs/wiener-skipcae-blur wiener-skipcae-blur \
        "Wiener + SkipCAE (05a)" --command "bash experiments/train_background.sh wiener-skipcae-blur ..."
"""
import argparse
import json
from pathlib import Path

from cae_course.checkpoint import load_checkpoint
from cae_course.data import load_lfw
from cae_course.reproduce import pack_run
from cae_course.storage import write_json

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the run folder (its checkpoint.pt)")
    parser.add_argument("name", help="the shipped name")
    parser.add_argument("label", help="the model's title in tables")
    parser.add_argument("--command", default="", help="the command that trained it, recorded with the model")
    args = parser.parse_args()
    meta = pack_run(args.run.expanduser(), args.name, args.label, load_lfw(progress=False), command=args.command)
    history = load_checkpoint(args.run.expanduser() / "checkpoint.pt")["history"]
    (ROOT / "results" / args.name).mkdir(parents=True, exist_ok=True)
    write_json(history, ROOT / "results" / args.name / "history.json")
    print(json.dumps({k: meta[k] for k in ("name", "provenance", "epochs", "train_seconds", "test")}, indent=2))


if __name__ == "__main__":
    main()
