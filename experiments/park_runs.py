"""Keep the background reproduction's unfinished runs across machines. `park` copies each unfinished run's checkpoint
(and the files it cannot be finished without) from the reproduction's folder into runs-parked/<run>/ in the repository,
to be committed at the end of a working session. `unpark` puts them back where no newer checkpoint is, and copies the
runs that results/ has finished, so that they are skipped rather than trained again; experiments/reproduce_background.sh
calls it before it starts. Why: a paper-scale run on a 2-core CPU outlasts a session (a perceptual run takes about
three hours), and a session may start on a fresh machine whose ~/.cache is empty; without a parked checkpoint the run
would start over every time.

What is parked, per run: work/<run>/checkpoint.pt (weights, Adam state, history, random state, the position within the
epoch), the snapshot of the reported epoch if it was taken (pack_model needs it), and results/<run>/ (the test
scores and figure-6 reconstructions taken so far). `park` removes the parked copy of a run that has finished
everything it has to do (commit the removal with the finished results). The paper-scale runs of chapter 10a
(experiments/privacy.py --epochs 15, in ~/.cache/cae_course/privacy/<model>-15ep/) are parked whole, finished or
not, in runs-parked/privacy/: privacy.py reuses a finished one. Delete that folder once the chapter's full-scale
results are committed.

Usage: python experiments/park_runs.py park|unpark [--from ~/.cache/cae_course/reproduce]
"""
import argparse
import os
import shutil
from pathlib import Path

from cae_course.checkpoint import load_checkpoint
from cae_course.paper import EXPERIMENTS, ReproScale, reported_epoch, snapshot_epochs
from cae_course.storage import read_json

ROOT = Path(__file__).resolve().parents[1]
PARKED = ROOT / "runs-parked"
PRIVACY = Path.home() / ".cache" / "cae_course" / "privacy"  # experiments/privacy.py's runs (its RUNS)


def copy_file(src: Path, dst: Path):
    "Copy `src` to `dst` whole or not at all (a `.part` file renamed at the end)."
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    shutil.copy2(src, part)
    os.replace(part, dst)


def finished(exp, results: Path) -> bool:
    "Has the run scored every epoch it is evaluated at (its reported one and, for figure 6's runs, the study's)?"
    record = read_json(results / exp.name / "test.json", {"epochs": {}})
    if not record["epochs"]:
        return False
    scale = ReproScale.of_results(results)
    return {str(e) for e in snapshot_epochs(exp, scale)} <= set(record["epochs"])


def park(
    source: Path,  # the reproduction's folder, holding results/ and work/
    parked: Path = PARKED,  # where parked runs are kept (the repository's runs-parked/)
    privacy: Path = PRIVACY,  # experiments/privacy.py's runs
):
    "Copy every unfinished run with a checkpoint into `parked`, and the paper-scale privacy runs; drop the parked copies of finished runs."
    for ckpt in sorted(privacy.glob("*ep/checkpoint.pt")):  # "<model>-15ep": the quick "-256steps" ones take minutes
        copy_file(ckpt, parked / "privacy" / ckpt.parent.name / "checkpoint.pt")
        print(f"privacy/{ckpt.parent.name}: parked")
    for exp in EXPERIMENTS:
        ckpt, dest = source / "work" / exp.name / "checkpoint.pt", parked / exp.name
        if not ckpt.exists() or finished(exp, source / "results"):
            if dest.exists():
                shutil.rmtree(dest)
                print(f"{exp.name}: finished, parked copy removed")
            continue
        state = load_checkpoint(ckpt, arch=exp.arch)
        snapshot = f"snapshots/epoch_{reported_epoch(exp, ReproScale.of_results(source / 'results')):02d}.pt"
        files = ["checkpoint.pt"] + ([snapshot] if (source / "work" / exp.name / snapshot).exists() else [])
        for name in files:
            copy_file(source / "work" / exp.name / name, dest / "work" / name)
        for f in (source / "results" / exp.name).glob("*"):
            copy_file(f, dest / "results" / f.name)
        step = state.get("partial", {}).get("step", 0)
        print(f"{exp.name}: parked after epoch {state['epoch']} (+ {step} steps of the next)")


def unpark(
    source: Path,  # the reproduction's folder, holding results/ and work/
    parked: Path = PARKED,  # where parked runs are kept (the repository's runs-parked/)
    results: Path = ROOT / "results",  # the repository's finished runs
    privacy: Path = PRIVACY,  # experiments/privacy.py's runs
):
    "Prepare the reproduction's folder on this machine: the runs `results` has finished, and the parked unfinished ones."
    for ckpt in sorted((parked / "privacy").glob("*/checkpoint.pt")):
        if not (privacy / ckpt.parent.name / "checkpoint.pt").exists():
            copy_file(ckpt, privacy / ckpt.parent.name / "checkpoint.pt")
            print(f"privacy/{ckpt.parent.name}: unparked into {privacy}")
    for exp in EXPERIMENTS:
        name, run = exp.name, parked / exp.name
        if finished(exp, results):  # so that the reproduction skips it instead of training it again
            if not (source / "results" / name / "test.json").exists():
                shutil.copytree(results / name, source / "results" / name)
                print(f"{name}: finished in {results}, copied into {source}")
        elif (run / "work" / "checkpoint.pt").exists():
            if (source / "work" / name / "checkpoint.pt").exists():
                print(f"{name}: {source} has its own checkpoint; the parked one is not used")
                continue
            for part in ("work", "results"):
                for f in (f for f in (run / part).rglob("*") if f.is_file()):
                    copy_file(f, source / part / name / f.relative_to(run / part))
            print(f"{name}: unparked into {source}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["park", "unpark"])
    parser.add_argument("--from", dest="source", type=Path, default=Path.home() / ".cache" / "cae_course" / "reproduce",
                        help="the background reproduction's folder, holding results/ and work/ (default: %(default)s)")
    args = parser.parse_args()
    park(args.source) if args.action == "park" else unpark(args.source)


if __name__ == "__main__":
    main()
