"""Chapter 10b's frontier: identification against obfuscation strength, as the obfuscation is and after each attack.

    python experiments/privacy_frontier.py                       # every setting and attack; resumes from the JSON
    python experiments/privacy_frontier.py --wild blur=~/.cache/cae_course/runs/id-wild-blur/checkpoint.pt \
        --wild pixelate=~/.cache/cae_course/runs/id-wild-pixelate/checkpoint.pt \
        $(python experiments/frontier_attackers.py --list)         # the committed frontier (chapter 10b)
    python experiments/privacy_frontier.py --people 60 --out /tmp/frontier.json   # a smoke run (small gallery)

Protocol (chapter 10a): the identity-disjoint split (`split_indices(n, seed=0, groups=names)`); the gallery is one
clean photo of every test person, the probes one other photo of every test person with two or more. dlib's
ResNet descriptors; top-1 and top-5 with Wilson intervals. Each probe is obfuscated (8-bit) by every setting of
`protections()` and given to every attack: as it is; the classical inverse told the setting (Wiener, or Lanczos
with back-projection told block and grid); the wild models; an obfuscated gallery (the gallery obfuscated the
same way, other grid phases and noise; only at --gallery-at: dlib's encoder takes ~0.17 s a face on one core,
and the 1,504 more faces a setting take 2/3 of its time); and any trained attacker named with --attacker SETTING=SOURCE.
The wild models are the shipped ones unless --wild KIND=SOURCE names others: the shipped ones were trained on the
paper's by-image split, which holds about 60 % of these probe photos, so for the committed frontier they are to be
retrained on the training identities (as experiments/privacy.py does) and given here.
Writes results/privacy_frontier.json after every (setting, attack), with the command, the machine and the date,
and results/privacy_frontier_examples.pt: the faces of a few probes after every (setting, attack), uint8.
"""
import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import denormalize, load_lfw, normalize, split_indices  # noqa: E402
from cae_course.frontier import FRONTIER_SEED, identification, protect, protections  # noqa: E402
from cae_course.privacy import FaceEncoder, face_model_versions, gallery_and_probes  # noqa: E402
from cae_course.shipped import pretrained_names  # noqa: E402
from cae_course.storage import save_atomic  # noqa: E402
from cae_course.checkpoint import load_checkpoint  # noqa: E402
from cae_course.train import load_model  # noqa: E402
from cae_course.verdict import model_method, told_control  # noqa: E402

WILD = {"blur": "wild-blur", "pixelate": "wild-pixelate", "dp-pixelate": "wild-pixelate"}
GALLERY_AT = ("blur-s2", "blur-s4")  # settings given the obfuscated gallery (see --gallery-at; chapter 10b says why so few)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attacker", action="append", default=[], help="SETTING=SOURCE: a model trained for one setting")
    parser.add_argument("--wild", action="append", default=[], help="KIND=SOURCE (blur, pixelate): a wild model to use instead of the shipped one")
    parser.add_argument("--gallery-at", nargs="*", default=GALLERY_AT, metavar="SETTING",
                        help="settings at which the obfuscated gallery is tried (it encodes all 1,504 gallery faces once more "
                             "per setting: two thirds of a setting's cost; default: %(default)s)")
    parser.add_argument("--only", nargs="+", metavar="SETTING", help="only these settings (or kinds: clean, blur, "
                        "pixelate, dp-pixelate); two processes with different --only share the JSON")
    parser.add_argument("--people", type=int, default=None, help="a smoke run: only this many test people")
    parser.add_argument("--examples", type=int, default=2, help="probes (identified when clean) whose faces are kept for the chapter")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "privacy_frontier.json")
    args = parser.parse_args()
    started = time.perf_counter()
    faces = load_lfw(progress=False)
    test_idx = split_indices(len(faces), seed=0, groups=faces.names)[2]
    names = [faces.names[i] for i in test_idx.tolist()]
    if args.people:
        keep = sorted(set(names))[:args.people]
        test_idx = torch.tensor([i for i, n in zip(test_idx.tolist(), names) if n in keep])
        names = [faces.names[i] for i in test_idx.tolist()]
    gallery, probes, truth = gallery_and_probes(names, seed=0)
    gallery_images, probe_images = faces.images[test_idx[gallery]], faces.images[test_idx[probes]]
    del faces  # 2.5 GB of photos no longer needed: two processes and two trainings share 24 GB
    out = args.out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(out.read_text()) if out.exists() else {}
    results = earlier.get("results", {}) if earlier.get("people") == len(gallery) else {}
    encoder = FaceEncoder()
    codes = lambda x: encoder(denormalize(x).clamp(0, 1))
    cached = Path.home() / ".cache" / "cae_course" / "frontier" / f"clean-codes-{len(gallery)}-{len(probes)}.pt"
    if cached.exists():  # a restart (to add attackers) need not encode the clean faces again
        gallery_codes, probe_codes = torch.load(cached, weights_only=True)
    else:
        gallery_codes, probe_codes = encoder(gallery_images), codes(normalize(probe_images))
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_atomic((gallery_codes, probe_codes), cached)
    nearest = torch.cdist(probe_codes.double(), gallery_codes.double()).argmin(1)
    shown = (nearest == truth).nonzero().flatten()[:args.examples].tolist()  # probes named correctly when clean
    examples_path = out.with_name(out.stem + "_examples.pt")
    examples = torch.load(examples_path, weights_only=True) if examples_path.exists() else {}
    if examples.get("probes") != [int(test_idx[probes[i]]) for i in shown]:
        examples = {"probes": [int(test_idx[probes[i]]) for i in shown], "images": {}}
    as_uint8 = lambda x: (denormalize(x[shown]).clamp(0, 1) * 255).round().to(torch.uint8)
    attackers = dict(spec.split("=", 1) for spec in args.attacker)
    sources = {**WILD, **dict(spec.split("=", 1) for spec in args.wild)}
    sources["dp-pixelate"] = sources["pixelate"]
    history = lambda source: load_checkpoint(Path(source).expanduser())["history"] if "/" in source else "shipped"
    load = lambda source: load_model(Path(source).expanduser() if "/" in source else source)[0]
    wild = {kind: model_method(source, load(source), "blur" if kind == "blur" else "pixelate")
            for kind, source in sources.items() if "/" in source or source in pretrained_names()}

    def save():
        "Merge what this process measured into the JSON (and the faces into the examples), under a lock: two processes may share them (--only)."
        with open(out.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = json.loads(out.read_text()) if out.exists() else {}
            if now.get("people") == len(gallery):
                for name, measured in now["results"].items():
                    mine = results.setdefault(name, {})  # in place: the loop below holds these dicts
                    for attack, scores in measured.items():
                        mine.setdefault(attack, scores)
                wild_seen.update(now.get("wild_models", {}))
                attackers_seen.update(now.get("attackers", {}))
                commands.extend(c for c in now.get("commands", []) if c not in commands)
            wild_seen.update({k: {"source": sources[k], "history": history(sources[k])} for k in wild})
            attackers_seen.update({k: {"source": v, "history": history(v)} for k, v in attackers.items()})
            shown_now = torch.load(examples_path, weights_only=True) if examples_path.exists() else {}
            if shown_now.get("probes") == examples["probes"]:
                examples["images"] = {**shown_now["images"], **examples["images"]}
            save_atomic(examples, examples_path)
            write(now.get("seconds", 0) + time.perf_counter() - clock[0])
            clock[0] = time.perf_counter()

    def write(seconds: float):
        save_result(out.stem, {
            "what": "top-1 and top-5 identification of unseen people (dlib's ResNet, chapter 10a's protocol) with "
                    "their probes obfuscated by each setting, as they are and after each attack",
            "people": len(gallery), "probes": len(probes),
            "face_model": face_model_versions(), "seed": FRONTIER_SEED,
            "settings": [p.__dict__ for p in protections()],
            "commands": commands, "wild_models": wild_seen, "attackers": attackers_seen,
            "seconds": round(seconds, 1), "results": results,  # summed over every process that added to it
        }, out.parent, show=False)

    wild_seen, attackers_seen, clock = {}, {}, [started]
    commands = ["python " + " ".join(sys.argv)]  # every run that added to the JSON
    for protection in protections():
        if args.only and protection.name not in args.only and protection.kind not in args.only:
            continue
        done = results.setdefault(protection.name, {})
        x, told = protect(probe_images, protection)
        attacks = {"as it is": lambda: x}
        if protection.kind != "clean":
            kind = "blur" if protection.kind == "blur" else "pixelate"
            attacks["classical, told"] = lambda: told_control(kind).restore(x, told, protection.setting())
            if protection.kind in wild:
                attacks["wild model"] = lambda: wild[protection.kind].restore(x, told, protection.setting())
            if protection.name in args.gallery_at:
                attacks["obfuscated gallery"] = None  # matched against the gallery obfuscated the same way
            if protection.name in attackers:
                model = load_model(Path(attackers[protection.name]).expanduser() if "/" in attackers[protection.name]
                                   else attackers[protection.name])[0]
                attacks["trained for this setting"] = lambda: model_method("attacker", model, kind).restore(x, told, protection.setting())
        for attack, run in attacks.items():
            if attack in done:
                continue
            if run is None:
                other = protect(gallery_images, protection, seed=FRONTIER_SEED + 1)[0]
                done[attack] = identification(codes(x), codes(other), truth)
            else:
                restored = run()
                done[attack] = identification(codes(restored), gallery_codes, truth)
                examples["images"][f"{protection.name}/{attack}"] = as_uint8(restored)
            print(f"{protection.name:>22} · {attack:<24} top-1 {done[attack]['top1']['rate']:.3f} "
                  f"top-5 {done[attack]['top5']['rate']:.3f}", flush=True)
            save()
    save()


if __name__ == "__main__":
    main()
