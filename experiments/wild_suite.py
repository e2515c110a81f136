"""Chapter 11's verdict: every contender on the wild test suite (chapter 02a) on 600 test faces, resumably.

    python experiments/wild_suite.py --faces 300          # all contenders; resumes from results/wild_suite.json
    python experiments/wild_suite.py --model wiener-skipcae=~/.cache/cae_course/runs/wiener-skipcae-blur/checkpoint.pt
    python experiments/wild_suite.py --faces 300 --lpips-faces 50 --only input "wiener (told)" wild-blur \
        --settings blur-s2 blur-s4-jpeg75                      # LPIPS too, for a few contenders and settings

Contenders: the obfuscated input; Wiener and Lanczos + back-projection told the truth (σ and kernel; block side and
grid phase), blind (estimating them, chapter 02b) and fixed at the paper's setting; the shipped CAEs named below;
and any `--model NAME=SOURCE` (a checkpoint or a shipped name). Every method sees the 8-bit (PNG or JPEG q75)
obfuscated faces and is scored only on its own obfuscation. Writes results/wild_suite.json after every
(setting, method), with the command, the machine, the date and the earlier commands; run it again to add
contenders or finish.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.classical import classical_model  # noqa: E402
from cae_course.data import load_lfw  # noqa: E402
from cae_course.lpips_metric import LPIPS  # noqa: E402
from cae_course.train import load_model  # noqa: E402
from cae_course.wild import WILD_SUITE  # noqa: E402
from cae_course.verdict import SUITE_FACES, input_method, model_method, suite_faces, suite_scores, told_control  # noqa: E402

SHIPPED = ["cae-pixel-blur", "cae-mixed1-blur", "cae-pixel-pixelate",  # the paper's best specialists by PSNR
           "wiener-skipcae-blur", "lanczos-skipcae-pixelate",  # chapter 05a's refiners
           "wild-blur", "wild-pixelate"]  # and the wild models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=SOURCE: a checkpoint or a shipped name")
    parser.add_argument("--faces", type=int, default=SUITE_FACES)
    parser.add_argument("--lpips-faces", type=int, default=0,
                        help="also LPIPS on the first N faces, for the scores that lack it (computed again)")
    parser.add_argument("--only", nargs="*", default=None, help="score only these contenders (names as in the JSON)")
    parser.add_argument("--settings", nargs="*", default=None, help="score only these settings of the suite (e.g. blur-s2)")
    args = parser.parse_args()
    out = ROOT / "results" / "wild_suite.json"
    earlier = json.loads(out.read_text()) if out.exists() else {"faces": args.faces, "results": {}}
    if earlier["faces"] != args.faces:
        sys.exit(f"{out} holds scores on {earlier['faces']} faces; move it away to score {args.faces}")
    done = earlier["results"]
    if args.lpips_faces:  # a score without LPIPS is computed again, with it
        done = {k: {m: v for m, v in ms.items() if "lpips" in v} for k, ms in done.items()}
    methods = [input_method(), told_control("blur"), told_control("pixelate"),
               model_method("wiener (blind)", classical_model("wiener-blind"), "blur"),
               model_method("wiener k9 σ4", classical_model("wiener"), "blur"),
               model_method("lanczos (blind)", classical_model("lanczos-blind"), "pixelate"),
               model_method("lanczos n8", classical_model("lanczos"), "pixelate")]
    for name, source in [(n, n) for n in SHIPPED] + [spec.split("=", 1) for spec in args.model]:
        if args.only is not None and name not in args.only:
            continue
        model, cfg = load_model(Path(source).expanduser() if "/" in source else source)
        methods.append(model_method(name, model, cfg.obfuscation))
    what = ("mean PSNR (dB) / SSIM on [0, 1] of every contender on every wild-suite setting of its obfuscation, "
            f"on {args.faces} test faces picked by torch.randperm (seed 7); inputs 8-bit PNG or JPEG q75; where a score "
            "has 'lpips', LPIPS (VGG16, lower is closer) on the first `lpips_faces` of those faces")
    lpips_faces = args.lpips_faces or earlier.get("lpips_faces")
    merged = lambda results: {k: {**earlier["results"].get(k, {}), **results.get(k, {})}  # nothing scored before is lost
                              for k in {**earlier["results"], **results}}
    before = earlier.get("earlier_commands", []) + ([{"command": earlier["command"], "date": earlier["machine"]["date"]}]
                                                    if "command" in earlier else [])  # what scored the rest
    save = lambda results: save_result("wild_suite", {"what": what, "faces": args.faces, "lpips_faces": lpips_faces,
                                                     "earlier_commands": before, "results": merged(results)},
                                       ROOT / "results", show=False)
    log = lambda results: (save(results), print(f"{sum(map(len, results.values()))} scores", flush=True))
    if args.only is not None:
        methods = [m for m in methods if m.name in args.only]
    lpips = LPIPS() if args.lpips_faces else None
    settings = [s for s in WILD_SUITE if args.settings is None or s.name in args.settings]
    results = suite_scores(methods, suite_faces(load_lfw(), args.faces), settings, lpips=lpips,
                           lpips_faces=args.lpips_faces, done=done, on_result=log)
    save(results)


if __name__ == "__main__":
    main()
