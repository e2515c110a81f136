"""Chapter 10b's attackers trained for one setting: the identity-disjoint wild model fine-tuned on each obfuscation.

    # first the wild models on the training identities (2 epochs each, ~35 min side by side on 2 cores):
    bash experiments/train_background.sh id-wild-blur --arch wiener-blind-skipcae --wild --eight-bit --paper \
        --split identity --epochs 2 --schedule onecycle --lr 3e-4
    bash experiments/train_background.sh id-wild-pixelate --arch lanczos-blind-skipcae --obfuscation pixelate \
        --wild --eight-bit --paper --split identity --epochs 2 --schedule onecycle --lr 3e-4
    # then one attacker per setting (~3 min each on one thread); two queues side by side use both cores:
    OMP_NUM_THREADS=1 nohup python experiments/frontier_attackers.py --only blur pixelate-n4 ... > a.log 2>&1 &
    python experiments/frontier_attackers.py --list       # the --attacker options for experiments/privacy_frontier.py

Each attacker starts from the wild model of its kind (blur: id-wild-blur; mosaics and DP-Pix: id-wild-pixelate) and
trains `--epochs` short epochs of `--faces` training faces at exactly its setting (`TrainConfig.protection`: the
frontier's own obfuscation, a fresh grid phase and noise draw per batch), on the training identities only, at a
constant learning rate; it is validated after each epoch on `--valid` faces of the validation identities, so its
history shows whether it has levelled off. Runs live in ~/.cache/cae_course/frontier/<setting>/; a finished one is
skipped, a stopped one resumed.
"""
import argparse
import json
import sys
from pathlib import Path

from cae_course.config import TrainConfig
from cae_course.frontier import protections

RUNS = Path.home() / ".cache" / "cae_course" / "frontier"
WILD_RUNS = Path.home() / ".cache" / "cae_course" / "runs"
ARCH = {"blur": ("wiener-blind-skipcae", "blur", "id-wild-blur"),
        "pixelate": ("lanczos-blind-skipcae", "pixelate", "id-wild-pixelate"),
        "dp-pixelate": ("lanczos-blind-skipcae", "pixelate", "id-wild-pixelate")}


def attacker_config(protection, faces: int, valid: int, epochs: int, lr: float) -> TrainConfig:
    "The fine-tuning run for one frontier setting: identity-disjoint, at that setting, from the wild model of its kind."
    arch, obfuscation, _ = ARCH[protection.kind]
    return TrainConfig(arch=arch, obfuscation=obfuscation, protection=protection.name, split="identity", eight_bit=True,
                       epochs=epochs, n_train=faces, n_valid=valid, lr=lr, schedule="constant")


def finished(
    run: Path,  # an attacker's run folder
    epochs: int,  # the epochs it is to train
) -> bool:
    "Whether the run has validated after its last epoch (its history.json, written after each epoch, has them all)."
    history = run / "history.json"
    return history.exists() and len(json.loads(history.read_text())) >= epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=None, help="settings (or kinds: blur, pixelate, dp-pixelate) to train")
    parser.add_argument("--faces", type=int, default=512, help="training faces per epoch")
    parser.add_argument("--valid", type=int, default=128, help="validation faces")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--list", action="store_true", help="print the finished attackers as --attacker options and exit")
    args = parser.parse_args()
    chosen = [p for p in protections() if p.kind != "clean"
              and (args.only is None or p.name in args.only or p.kind in args.only)]
    if args.list:
        print(" ".join(f"--attacker {p.name}=~/.cache/cae_course/frontier/{p.name}/checkpoint.pt" for p in chosen
                       if finished(RUNS / p.name, args.epochs)))
        return
    from cae_course.checkpoint import load_checkpoint
    from cae_course.data import load_lfw
    from cae_course.train import fit

    faces = load_lfw(progress=False)
    for p in chosen:
        cfg, out = attacker_config(p, args.faces, args.valid, args.epochs, args.lr), RUNS / p.name
        ckpt = out / "checkpoint.pt"
        saved = load_checkpoint(ckpt) if ckpt.exists() else None
        if saved and saved["epoch"] >= cfg.epochs and "partial" not in saved:
            print(f"{p.name}: done", flush=True)
            continue
        start = WILD_RUNS / ARCH[p.kind][2] / "checkpoint.pt"
        print(f"{p.name}: from {start}", flush=True)
        run = fit(cfg, faces, out_dir=out, resume=saved is not None, start_from=start, progress=False)
        print(p.name, " ".join(f"{h['valid_psnr']:.2f}" for h in run.history),
              f"(input {run.history[-1]['valid_input_psnr']:.2f} dB)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
