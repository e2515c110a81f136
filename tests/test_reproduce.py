"""Chapter 09: the experiment table, the resumable runner, the shipped 8-bit models and the demo."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import cae_course
from cae_course.cli import main
from cae_course.data import Scale, center_crop, split_indices
from cae_course.obfuscate import gaussian_blur, pixelate
from cae_course.demo import astronaut_face, demo
from cae_course.pack import QUANT_FORMAT, save_packed, QUANT_TOLERANCE, dequantize_state, output_channel_axis, quantize_state
from cae_course.paper import EPOCH_STUDY, EXPERIMENTS, FIGURE_FACES, PAPER_INPUT, REPRO_SCALES, ReproScale, experiment
from cae_course.reproduce import experiment_config, quality_gate, reproduce, run_precision
from cae_course.shipped import pretrained, pretrained_info, pretrained_names, weights_dir
from cae_course.config import TrainConfig
from cae_course.train import evaluate, reconstruct


def pretrained_config(name: str) -> TrainConfig:
    "The configuration a shipped model was trained with."
    return TrainConfig(**pretrained_info(name)["config"])

ROOT = Path(__file__).resolve().parents[1]

# The paper's §5 and figures 1–4, written out independently of the module: name → (arch, loss, rho, obfuscation,
# epochs in the paper, test PSNR, test SSIM).
PAPER_RUNS = {
    "cae-pixel-blur": ("cae", "pixel", None, "blur", 15, 30.62, 0.88),
    "vcae-pixel-blur": ("vcae", "pixel", None, "blur", 15, 22.69, 0.54),
    "rescae-pixel-blur": ("rescae", "pixel", None, "blur", 15, 29.43, 0.84),
    "cae-perceptual-blur": ("cae", "perceptual", None, "blur", 5, 24.25, 0.79),
    "cae-mixed0.5-blur": ("cae", "mixed", 0.5, "blur", 5, 26.59, 0.84),
    "cae-mixed1-blur": ("cae", "mixed", 1.0, "blur", 5, 27.26, 0.86),
    "cae-pixel-pixelate": ("cae", "pixel", None, "pixelate", 15, 25.40, 0.68),
    "cae-mixed1-pixelate": ("cae", "mixed", 1.0, "pixelate", 5, 22.48, 0.61),
}
TINY = ReproScale("tiny", Scale("tiny", n_train=16, n_eval=8, image_size=32, epochs=1, batch_size=8),
                  {"long": 2, "short": 1}, (1, 2), "test")


def test_experiment_table_is_the_papers():
    assert [e.name for e in EXPERIMENTS] == list(PAPER_RUNS)
    full = REPRO_SCALES["full"]
    for e in EXPERIMENTS:
        arch, loss, rho, obf, epochs, p, s = PAPER_RUNS[e.name]
        cfg = experiment_config(e, full)
        assert (cfg.arch, cfg.loss, cfg.obfuscation, e.paper) == (arch, loss, obf, (p, s))
        if rho is not None:
            assert cfg.rho == rho
        assert full.epochs[e.schedule] == epochs
        assert (cfg.image_size, cfg.batch_size, cfg.n_train, cfg.lr, cfg.weight_decay) == (112, 8, None, 5e-4, 1e-5)
        assert (cfg.kernel_size, cfg.sigma, cfg.block) == (9, 4.0, 8)
    assert PAPER_INPUT == {"blur": (26.67, 0.73), "pixelate": (22.42, 0.48)}
    assert full.study_epochs == (1, 5, 10, 15) and set(EPOCH_STUDY) == {"cae-pixel-blur", "cae-perceptual-blur"}
    assert experiment_config(experiment("cae-perceptual-blur"), full).epochs == 5  # the epoch its table reports
    assert experiment_config(experiment("cae-perceptual-blur"), full, epochs=15).epochs == 15  # figure 6 trains on


def test_unknown_experiment_lists_names():
    with pytest.raises(ValueError, match="cae-mixed1-pixelate"):
        experiment("cae")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, lfw, vgg16_weights):
    "All eight experiments at a tiny scale, on the CPU, packed into a weights folder."
    root = tmp_path_factory.mktemp("reproduce")
    records = reproduce(root / "results", TINY, root / "runs", faces=lfw, device="cpu", vgg16=str(vgg16_weights),
                        pack_into=root / "weights", command="test", progress=False)
    return root, records


def test_runner_writes_every_results_file(tiny_run, lfw):
    root, records = tiny_run
    out = root / "results"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scale"]["name"] == "tiny" and manifest["command"] == "test" and manifest["torch"] == torch.__version__
    for e in EXPERIMENTS:
        assert records[e.name]["complete"]
        config = json.loads((out / e.name / "config.json").read_text())
        history = json.loads((out / e.name / "history.json").read_text())
        record = json.loads((out / e.name / "test.json").read_text())
        trained = 2 if e.schedule == "long" or e.name in EPOCH_STUDY else 1
        assert config["train_config"]["epochs"] == trained == len(history)
        assert config["steps_per_epoch"] == 2 and config["train_faces"] == 16
        assert sorted(record["epochs"]) == (["1", "2"] if e.name in EPOCH_STUDY else [str(trained)])
        assert record["test_faces"] == 8 and record["train_seconds"] > 0 and record["device"].startswith("CPU")
        assert {"psnr", "ssim", "ssim_pm1", "input_psnr", "input_ssim", "input_ssim_pm1"} <= set(record["epochs"][str(trained)])
    study = np.load(out / "cae-pixel-blur" / "study.npz")
    assert sorted(study.files) == ["epoch_01", "epoch_02"]
    assert study["epoch_02"].shape == (FIGURE_FACES, 3, 32, 32) and study["epoch_02"].dtype == np.uint8
    assert not (out / "vcae-pixel-blur" / "study.npz").exists()


def test_recorded_psnr_matches_scikit_image(tiny_run, lfw):
    "The runner's test PSNR, recomputed from the kept snapshot with scikit-image."
    root, _ = tiny_run
    exp = experiment("cae-pixel-blur")
    cfg = experiment_config(exp, TINY)
    model = pretrained("cae-pixel-blur", folder=root / "weights")  # any model works; use the snapshot below
    model.load_state_dict(torch.load(root / "runs" / exp.name / "snapshots" / "epoch_02.pt", weights_only=True))
    faces = center_crop(lfw.images[split_indices(len(lfw))[2][:8]], 32)
    clean, _, rec = reconstruct(model, faces, cfg)
    expected = np.mean([peak_signal_noise_ratio(c.numpy(), r.numpy(), data_range=1.0) for c, r in zip(clean, rec)])
    recorded = json.loads((root / "results" / exp.name / "test.json").read_text())["epochs"]["2"]["psnr"]
    assert recorded == pytest.approx(expected, abs=1e-3)


def test_runner_recovers_a_missed_snapshot_and_skips_complete_runs(tiny_run, lfw, tmp_path):
    "A run killed after its last checkpoint but before its snapshot gets the snapshot on the next start."
    root, _ = tiny_run
    import shutil
    out, work = tmp_path / "results", tmp_path / "runs"
    shutil.copytree(root / "results", out)
    shutil.copytree(root / "runs", work)
    path = out / "vcae-pixel-blur" / "test.json"
    record = json.loads(path.read_text())
    kept = record["epochs"].pop("2")
    record["complete"] = False
    path.write_text(json.dumps(record))
    before = (out / "cae-pixel-blur" / "test.json").read_text()
    again = reproduce(out, TINY, work, faces=lfw, device="cpu", progress=False)
    assert again["vcae-pixel-blur"]["complete"]
    assert again["vcae-pixel-blur"]["epochs"]["2"]["psnr"] == pytest.approx(kept["psnr"], abs=1e-5)
    assert (out / "cae-pixel-blur" / "test.json").read_text() == before  # complete: untouched


def park_runs():
    "experiments/park_runs.py as a module (it is a script, not part of the package)."
    import importlib.util
    spec = importlib.util.spec_from_file_location("park_runs", ROOT / "experiments" / "park_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_parked_run_resumes_on_a_fresh_machine(tiny_run, lfw, tmp_path):
    "An unfinished run parked in the repo is put back on an empty machine and finished there; finished runs are skipped."
    root, _ = tiny_run
    import shutil
    old, parked, fresh = tmp_path / "old", tmp_path / "runs-parked", tmp_path / "fresh"
    shutil.copytree(root / "results", old / "results")
    shutil.copytree(root / "runs", old / "work")
    path = old / "results" / "vcae-pixel-blur" / "test.json"  # vcae: trained, but its last snapshot not yet taken
    record = json.loads(path.read_text())
    kept = record["epochs"].pop("2")
    path.write_text(json.dumps({**record, "complete": False}))
    for run in ("cae-pixel-blur-15ep", "cae-pixel-blur-256steps"):  # chapter 10a's runs: paper-scale ones are parked
        (old / "privacy" / run).mkdir(parents=True)
        (old / "privacy" / run / "checkpoint.pt").write_bytes(run.encode())
    park = park_runs()
    park.park(old, parked, privacy=old / "privacy")
    assert sorted(p.name for p in parked.iterdir()) == ["privacy", "vcae-pixel-blur"]
    assert (parked / "vcae-pixel-blur" / "work" / "checkpoint.pt").read_bytes() == \
        (old / "work" / "vcae-pixel-blur" / "checkpoint.pt").read_bytes()
    park.unpark(fresh, parked, results=old / "results", privacy=fresh / "privacy")
    assert [p.name for p in (fresh / "privacy").iterdir()] == ["cae-pixel-blur-15ep"]
    assert (fresh / "privacy" / "cae-pixel-blur-15ep" / "checkpoint.pt").read_bytes() == b"cae-pixel-blur-15ep"
    assert (fresh / "work" / "vcae-pixel-blur" / "checkpoint.pt").read_bytes() == \
        (old / "work" / "vcae-pixel-blur" / "checkpoint.pt").read_bytes()
    again = reproduce(fresh / "results", TINY, fresh / "work", faces=lfw, device="cpu", progress=False)
    assert again["vcae-pixel-blur"]["epochs"]["2"]["psnr"] == pytest.approx(kept["psnr"], abs=1e-5)
    for e in EXPERIMENTS:  # the finished runs were copied, not trained again
        if e.name != "vcae-pixel-blur":
            assert (fresh / "results" / e.name / "test.json").read_text() == (old / "results" / e.name / "test.json").read_text()
    park.park(fresh, parked, privacy=fresh / "privacy")  # finished now: its parked copy goes
    assert not (parked / "vcae-pixel-blur").exists()


def test_a_results_folder_gives_its_scale_back(tmp_path):
    "`ReproScale.of_results` reads the manifests `reproduce` writes, the committed results-quick/ one included."
    saved = json.loads((ROOT / "results-quick" / "manifest.json").read_text())["scale"]
    scale = ReproScale.of_results(ROOT / "results-quick")
    assert (scale.name, scale.epochs, list(scale.study_epochs), scale.provenance) == \
        (saved["name"], saved["epochs"], saved["study_epochs"], saved["provenance"])
    assert {k: getattr(scale.size, k) for k in saved["size"]} == saved["size"]  # fields added to `Scale` later: defaults
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        ReproScale.of_results(tmp_path)


def test_unknown_scale_and_run_are_clear_errors(tmp_path, lfw):
    with pytest.raises(ValueError, match="full, quick"):
        reproduce(tmp_path, "huge", faces=lfw)
    with pytest.raises(ValueError, match="cae-pixel-blur"):
        reproduce(tmp_path, TINY, faces=lfw, only=["cae-pixel"])


def test_every_shipped_model_loads_and_reconstructs():
    names = pretrained_names()
    assert set(PAPER_RUNS) <= set(names)  # the paper's eight, and full-scale models beyond them (chapter 11)
    assert cae_course.pretrained_names() == names  # the package-level shortcut
    for name in names:
        info, cfg = pretrained_info(name), pretrained_config(name)
        model = cae_course.pretrained(name)
        assert not model.training
        if name in PAPER_RUNS:
            arch, _, _, obfuscation, *_ = PAPER_RUNS[name]
            assert (cfg.arch, cfg.obfuscation) == (arch, obfuscation) and info["provenance"] == "paper-scale"
        else:
            assert info["provenance"] == "full-scale" and name.endswith(cfg.obfuscation), name
        x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape and y.abs().max() <= 1
        assert info["steps"] > 0 and info["test"]["faces"] > 0 and info["quantization"]["format"] == QUANT_FORMAT


def test_shipped_weights_fit_the_budget():
    files = list(weights_dir().iterdir())
    assert sum(f.stat().st_size for f in files) <= 40e6
    assert {f.suffix for f in files} == {".safetensors", ".json"}


def test_unknown_pretrained_name_lists_the_names():
    with pytest.raises(ValueError) as err:
        pretrained("cae-blur")
    assert all(name in str(err.value) for name in PAPER_RUNS)


def test_quantisation_keeps_the_metrics_within_tolerance(lfw):
    "Quantising a float model (shipped weights moved off the 8-bit grid) changes its outputs and test metrics only a little."
    torch.manual_seed(0)
    name = "cae-pixel-blur"
    cfg = pretrained_config(name)
    model = pretrained(name)
    with torch.no_grad():  # a float model: every convolution weight moved by up to half a quantisation step
        for layer in model.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                others = [d for d in range(4) if d != output_channel_axis(layer)]
                step = layer.weight.abs().amax(dim=others, keepdim=True) / 127
                layer.weight += (torch.rand_like(layer.weight) - 0.5) * step
    quantised = pretrained(name)
    quantised.load_state_dict(dequantize_state(quantize_state(model)))
    faces = center_crop(lfw.images[split_indices(len(lfw))[2][:32]], cfg.image_size)
    _, _, out_float = reconstruct(model, faces, cfg)
    _, _, out_int8 = reconstruct(quantised, faces, cfg)
    agreement = 10 * math.log10(1 / (out_float - out_int8).square().mean().item())
    assert agreement >= 40  # dB between the two models' outputs
    a, b = evaluate(model, faces, cfg), evaluate(quantised, faces, cfg)
    assert abs(a["psnr"] - b["psnr"]) <= QUANT_TOLERANCE["psnr"] and abs(a["ssim"] - b["ssim"]) <= QUANT_TOLERANCE["ssim"]


def test_packed_metadata_is_measured_not_copied(tiny_run, lfw):
    "A packed model's float scores are the runner's, its int8 scores re-measure from the packed file, within tolerance."
    root, _ = tiny_run
    faces = center_crop(lfw.images[split_indices(len(lfw))[2][:8]], 32)
    for name in ("cae-pixel-blur", "vcae-pixel-blur"):
        info = pretrained_info(name, root / "weights")
        record = json.loads((root / "results" / name / "test.json").read_text())
        assert info["test"]["float"] == record["epochs"][str(info["epochs"])]
        measured = TrainConfig(**{**info["config"], "bf16": False})  # packed models are measured in float32 (`write_packed`)
        again = evaluate(pretrained(name, folder=root / "weights"), faces, measured)
        assert again["psnr"] == pytest.approx(info["test"]["int8"]["psnr"], abs=1e-4)
        assert abs(info["test"]["float"]["psnr"] - again["psnr"]) <= QUANT_TOLERANCE["psnr"], name


@pytest.fixture(scope="module")
def gate(lfw):
    "The quality gate of the shipped models: name → its row of `quality_gate`."
    return {row["name"]: row for row in quality_gate(lfw)}


def test_every_shipped_model_scores_what_it_recorded(gate):
    assert set(gate) == set(pretrained_names()) >= set(PAPER_RUNS)
    for name, row in gate.items():
        assert row["within margin"], row


@pytest.mark.parametrize("name", PAPER_RUNS)
def test_shipped_models_beat_their_input(gate, name):
    "What every model is trained to do, whatever its loss; and every one that ships was trained at the paper's scale."
    assert pretrained_info(name)["provenance"] == "paper-scale"
    assert gate[name]["PSNR"] > gate[name]["input PSNR"]


def test_the_gate_fails_a_broken_model(lfw, tmp_path):
    "A model whose last layer was zeroed (its output: a constant) keeps its shapes but fails the gate."
    name = "cae-pixel-blur"
    model = pretrained(name)
    last = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.zero_()
    save_packed(model, tmp_path / f"{name}.safetensors", name)
    (tmp_path / f"{name}.json").write_text((weights_dir() / f"{name}.json").read_text())
    [row] = quality_gate(lfw, tmp_path)
    assert not row["within margin"] and row["PSNR"] < row["input PSNR"]


def test_demo_on_the_astronaut(tmp_path):
    png = tmp_path / "demo.png"
    table = demo(out=png)
    assert Image.open(png).size[0] >= 120 * (len(table) + 1)  # one row: the face, then a 1.3-inch panel (100 dpi) per table row
    size = max(pretrained_config(n).image_size for n in pretrained_names())  # by default: the models of the largest size
    shown = {n for n in pretrained_names() if pretrained_config(n).image_size == size}
    inputs = {f"{pretrained_config(n).obfuscation} input" for n in shown}
    assert {r["model"] for r in table} == shown | inputs
    clean = astronaut_face(size).float()[None] / 255
    for kind, obfuscated in (("blur", gaussian_blur(clean)), ("pixelate", pixelate(clean))):
        row = next((r for r in table if r["model"] == f"{kind} input"), None)
        if row is not None:
            assert row["PSNR"] == pytest.approx(peak_signal_noise_ratio(clean.numpy(), obfuscated.numpy(), data_range=1.0), abs=0.01)


def test_demo_leaves_out_another_size_and_refuses_to_mix_sizes(tmp_path, capsys):
    "Models of two image sizes in one folder: the default shows the larger and says what it left out; a mixed choice is refused."
    for name, size in (("cae-112", 112), ("cae-64", 64)):
        info = {**pretrained_info("cae-pixel-blur"), "name": name}
        info["config"] = {**info["config"], "image_size": size}
        (tmp_path / f"{name}.json").write_text(json.dumps(info))
        (tmp_path / f"{name}.safetensors").write_bytes((weights_dir() / "cae-pixel-blur.safetensors").read_bytes())
    table = demo(out=tmp_path / "demo.png", folder=tmp_path)
    assert {r["model"] for r in table} == {"cae-112", "blur input"}
    assert "left out (another image size): cae-64" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pick models of one size"):
        demo(names=["cae-112", "cae-64"], out=tmp_path / "mixed.png", folder=tmp_path)


def test_astronaut_face_is_the_face():
    face = astronaut_face(112)
    assert face.shape == (3, 112, 112) and face.dtype == torch.uint8
    with pytest.raises(ValueError, match="230"):
        astronaut_face(300)


def test_demo_on_user_images_and_a_bad_path(tmp_path, lfw, capsys):
    photo = tmp_path / "face.jpg"
    Image.fromarray(lfw.images[0].permute(1, 2, 0).numpy()).save(photo)
    png = tmp_path / "mine.png"
    assert main(["demo", str(photo), "--out", str(png), "--models", "cae-pixel-blur"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert png.exists() and sum("face.jpg" in l for l in printed) == 2  # the blurred input, the model
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert main(["demo", str(notes), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cae-course demo: error:") and "notes.txt" in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


def test_demo_list(capsys):
    assert main(["demo", "--list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in PAPER_RUNS) and ("cpu-standin" in printed or "paper-scale" in printed)


def test_package_build_includes_the_weights(tmp_path):
    "What `pip install .` copies (setuptools' build_py) contains every shipped weights file."
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    built = {p.name for p in (tmp_path / "cae_course" / "weights").iterdir()}
    assert built == {p.name for p in weights_dir().iterdir()}


def test_a_run_reports_every_number_format_its_reported_epochs_used():
    history = [{"epoch": 1}, {"epoch": 2, "precision": "fp32"}, {"epoch": 3, "precision": "bf16"}]
    assert run_precision(history[1:], 1) == "fp32"
    assert run_precision(history[1:], 2) == "bf16, fp32"  # a mixed run says so
    assert run_precision(history, 2) == "fp32, fp32 (not recorded)"  # rows written before precision was recorded
