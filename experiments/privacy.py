"""Chapter 10's re-identification experiment: does blurring or pixelating a face hide who it is from a real face
recogniser (dlib's ResNet), and does a CAE reconstruction give the identity back?

Everything is measured on people the models never saw: the split is chapter 01's identity-disjoint one
(`split_indices(n, groups=names)`); pixel-loss CAEs are retrained on the training identities (the course's shipped
models were trained on the paper's by-image split, whose test identities they have seen).

    nohup python experiments/privacy.py --epochs 15 > privacy.log 2>&1 &   # the committed report: the paper's 15
                  # epochs of all the training identities' faces. On a 2-core CPU each model takes ~60 min when
                  # the two train side by side (one `--models` each, OMP_NUM_THREADS=1), then 4 min for the report
    python experiments/privacy.py --steps 256      # a smoke run in ~17 min: models this short are still worse than
                  # their input, so its report goes to ~/.cache/cae_course/privacy/, never over results/

Writes results/privacy_reid.json (rates with 95 % intervals, per-probe outcomes, command, machine, date) and
results/privacy_examples.pt (a few faces re-identified only after reconstruction, and the reverse).
Trained models are kept in ~/.cache/cae_course/privacy/<name>-<length>/ and reused (or resumed) when the configuration
matches. The paper-scale ones outlast a working session: `python experiments/park_runs.py park` at
the end of one keeps them in the repository (runs-parked/privacy/), and `python experiments/park_runs.py unpark` on a
fresh machine puts them back before this script is run again.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import LFW, default_device, load_lfw, split_indices  # noqa: E402
from cae_course.privacy import (FaceEncoder, MATCH_THRESHOLD, face_model_versions, gallery_and_probes,  # noqa: E402
                                reidentification)
from cae_course.config import TrainConfig
from cae_course.train import fit, load_checkpoint, load_model, reconstruct  # noqa: E402

IMAGE_SIZE = 112  # dlib's face chips need the whole face: the 64×64 quick crop cuts it at the brows and lips


RUNS = Path.home() / ".cache" / "cae_course" / "privacy"  # outside the work tree: no checkout can remove a run


def model_config(name: str, steps: int | None, epochs: int, seed: int) -> TrainConfig:
    "Config of `<arch>-<loss>-<obfuscation>` (e.g. cae-pixel-blur): `epochs` over every face, or `steps` on a subset."
    arch, loss, obfuscation = name.split("-")
    length = dict(epochs=epochs) if steps is None else dict(epochs=1, n_train=steps * 8, n_valid=128)
    return TrainConfig(arch=arch, loss=loss, obfuscation=obfuscation, image_size=IMAGE_SIZE, seed=seed, **length)


def trained_model(name: str, cfg: TrainConfig, faces: LFW, device) -> tuple[torch.nn.Module, dict]:
    "Train `cfg` on `faces` into RUNS/<name>-<length>: reuse a finished run of the same configuration, resume a stopped one."
    out = RUNS / f"{name}-{f'{cfg.epochs}ep' if cfg.n_train is None else f'{cfg.n_train // 8}steps'}"
    ckpt = out / "checkpoint.pt"
    saved = load_checkpoint(ckpt) if ckpt.exists() else None
    same = saved is not None and saved["config"] == dataclasses.asdict(cfg)
    reused = same and "partial" not in saved and saved["epoch"] >= cfg.epochs
    if not reused:
        fit(cfg, faces, out_dir=out, resume=same, device=device, progress=cfg.n_train is None)
    model, _ = load_model(ckpt, device)
    return model, {"reused_checkpoint": reused, "history": load_checkpoint(ckpt)["history"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cae-pixel-blur", "cae-pixel-pixelate"])
    parser.add_argument("--epochs", type=int, default=15, help="epochs over every training face (the paper's 15)")
    parser.add_argument("--steps", type=int, default=None,
                        help="instead of --epochs: a smoke run of this many steps of batch 8 on a subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=2, help="faces of each kind to keep for the notebook")
    args = parser.parse_args()
    device = default_device()
    out = ROOT / "results" if args.steps is None else RUNS  # a smoke run never replaces the committed report
    started = time.perf_counter()

    faces = load_lfw(progress=False)
    train_idx, valid_idx, test_idx = split_indices(len(faces), seed=args.seed, groups=faces.names)
    seen = torch.cat([train_idx, valid_idx]).sort().values  # `fit` splits these again, by image, for validation
    seen_faces = LFW(faces.images[seen], [faces.names[i] for i in seen.tolist()], faces.source)
    test_names = [faces.names[i] for i in test_idx.tolist()]
    assert not set(test_names) & set(seen_faces.names), "the split must be identity-disjoint"

    gallery, probes, truth = gallery_and_probes(test_names, seed=args.seed)
    gallery_images, probe_images = faces.images[test_idx[gallery]], faces.images[test_idx[probes]]
    encoder = FaceEncoder()
    gallery_codes = encoder(gallery_images)

    models, conditions, probe_views = {}, {}, {"clean": probe_images}
    for name in args.models:
        cfg = model_config(name, args.steps, args.epochs, args.seed)
        model, info = trained_model(name, cfg, seen_faces, device)
        models[name] = {"config": dataclasses.asdict(cfg), **info}
        _, obfuscated, restored = reconstruct(model, probe_images, cfg)
        probe_views.setdefault(cfg.obfuscation, obfuscated)
        probe_views[f"{name} reconstruction"] = restored
    outcomes = {}
    for condition, images in probe_views.items():
        report, outcome = reidentification(encoder(images), gallery_codes, truth, threshold=MATCH_THRESHOLD,
                                           seed=args.seed)
        conditions[condition], outcomes[condition] = report, outcome
        print(f"{condition:>32}: top-1 {report['top1']['rate']:.3f} "
              f"[{report['top1']['low']:.3f}, {report['top1']['high']:.3f}], verification "
              f"{report['verification_accuracy']['rate']:.3f}", flush=True)

    examples = {"images": [], "model": [], "kind": [], "name": []}
    for name in args.models:
        obf = models[name]["config"]["obfuscation"]
        before, after = outcomes[obf][:, 0], outcomes[f"{name} reconstruction"][:, 0]  # identified (top-1)?
        for kind, picked in (("recovered", after & ~before), ("lost", before & ~after)):
            for i in picked.nonzero().flatten()[:args.examples].tolist():
                views = [gallery_images[truth[i]], probe_images[i], probe_views[obf][i], probe_views[f"{name} reconstruction"][i]]
                examples["images"].append(torch.stack([v if v.dtype == torch.uint8 else (v * 255).round().to(torch.uint8)
                                                       for v in views]))
                examples["model"].append(name), examples["kind"].append(kind), examples["name"].append(test_names[probes[i]])
    examples["images"] = torch.stack(examples["images"]) if examples["images"] else torch.empty(0, 4, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    examples["views"] = ["gallery (clean)", "probe (clean)", "probe (obfuscated)", "probe (reconstructed)"]
    torch.save(examples, out / "privacy_examples.pt")

    save_result("privacy_reid", {
        "seconds": round(time.perf_counter() - started, 1),
        "split": f"identity-disjoint: split_indices(n, seed={args.seed}, groups=names); models trained on the "
                 "train+valid identities, evaluated on the test identities",
        "face_model": {"packages": face_model_versions(), "chip": f"{encoder.chip_size}x{encoder.chip_size}, "
                       f"padding {encoder.padding}, 5-point landmarks in the whole {IMAGE_SIZE}x{IMAGE_SIZE} crop"},
        "threshold": MATCH_THRESHOLD,
        "gallery": {"identities": len(gallery), "note": "one clean image of every test identity"},
        "probes": {"count": len(probes), "note": "one other image of every test identity that has two or more",
                   "lfw_index": test_idx[probes].tolist()},
        "models": models,
        "conditions": conditions,
        "top1_per_probe": {k: v[:, 0].int().tolist() for k, v in outcomes.items()},
    }, folder=out, show=False)
    print(f"report: {out / 'privacy_reid.json'}")


if __name__ == "__main__":
    main()
