"""The `cae-course` command: train, evaluate and deobfuscate through `main`, and the installed console script."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from cae_course.cli import main, make_parser
from cae_course.data import split_faces
from cae_course.shipped import pretrained_info
from cae_course.train import Run, evaluate, load_checkpoint, load_model

TINY = ["--n-train", "16", "--n-valid", "8", "--image-size", "32", "--epochs", "1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, lfw):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out / "checkpoint.pt"


def test_help_for_every_command(capsys):
    for command in ("train", "evaluate", "deobfuscate", "reproduce", "demo"):
        with pytest.raises(SystemExit) as done:
            make_parser().parse_args([command, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: cae-course {command}")
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--help"])
    listed = capsys.readouterr().out
    assert all(c in listed for c in ("train", "evaluate", "deobfuscate", "reproduce", "demo"))


def test_train_options_carry_the_config_comments(capsys):
    with pytest.raises(SystemExit):
        make_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "passes over the training faces (paper: 15)" in text and "--no-bf16" in text


def test_every_train_option_reaches_the_config(tmp_path, lfw, monkeypatch):
    seen = {}

    def fake_fit(cfg, faces, **kwargs):  # record the configuration instead of training
        seen["cfg"], seen["start_from"] = cfg, kwargs["start_from"]
        return Run(model=None, config=cfg)

    monkeypatch.setattr("cae_course.train.fit", fake_fit)  # the command imports it when it runs
    main(["train", "--out", str(tmp_path), "--arch", "rescae", "--loss", "mixed", "--rho", "0.5", "--sigma", "2.5",
          "--obfuscation", "pixelate", "--block", "4", "--no-bf16", "--lr", "1e-3", "--split", "identity",
          "--protection", "pixelate-n12", "--start-from", "cae-pixel-pixelate", *TINY])
    cfg = seen["cfg"]
    assert (cfg.arch, cfg.loss, cfg.rho, cfg.sigma, cfg.obfuscation, cfg.block, cfg.bf16, cfg.lr) == (
        "rescae", "mixed", 0.5, 2.5, "pixelate", 4, False, 1e-3)
    assert (cfg.split, cfg.protection, seen["start_from"]) == ("identity", "pixelate-n12", "cae-pixel-pixelate")
    assert (cfg.n_train, cfg.image_size, cfg.epochs) == (16, 32, 1)


def test_evaluate_writes_json(checkpoint, tmp_path, lfw):
    "The JSON holds the model's scores on the first 16 test faces, the same as `evaluate` computes directly."
    assert main(["evaluate", str(checkpoint), "-n", "16", "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["images"] == 16 and metrics["split"] == "test" and metrics["config"]["image_size"] == 32
    model, cfg = load_model(checkpoint)
    expected = evaluate(model, split_faces(lfw, "test", 16, 32), cfg)
    assert {k: round(v, 4) for k, v in expected.items()} == {k: round(metrics[k], 4) for k in expected}
    assert metrics["psnr"] != metrics["input_psnr"]  # the reconstruction, not the input, is scored


def test_a_shipped_model_works_where_a_checkpoint_does(tmp_path, lfw):
    name = "cae-pixel-blur"
    assert main(["evaluate", name, "-n", "8", "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    size = pretrained_info(name)["config"]["image_size"]
    assert metrics["model"] == name and metrics["config"]["image_size"] == size
    blurred_face(lfw, 0).save(tmp_path / "photo.jpg")
    assert main(["deobfuscate", name, str(tmp_path / "photo.jpg"), "--out", str(tmp_path / "restored")]) == 0
    assert Image.open(tmp_path / "restored" / "photo.png").size == (size, size)  # the whole picture, a face crop itself


def test_the_parser_and_help_import_no_torch():
    "`cae-course --help` answers at once: building the parser imports neither PyTorch nor NumPy (a fresh process)."
    probe = ("import sys; from cae_course.cli import make_parser; p = make_parser(); p.format_help(); "
             "print([m for m in ('torch', 'numpy') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def blurred_face(lfw, i: int, sigma: float = 4.0) -> Image.Image:
    "LFW face `i` (a 112-pixel crop) blurred by `sigma`, as a photo whose face somebody else blurred."
    return Image.fromarray(lfw.images[i].permute(1, 2, 0).numpy()).filter(ImageFilter.GaussianBlur(sigma))


def test_deobfuscate_with_a_shipped_model_runs_without_torch_and_matches_it(tmp_path, lfw):
    "A shipped model's name runs in NumPy (no PyTorch in the process) and gives PyTorch's reconstruction to one level."
    from cae_course.data import denormalize, normalize
    from cae_course.shipped import pretrained

    blurred_face(lfw, 3).save(tmp_path / "photo.png")
    probe = ("import sys; from cae_course.cli import main; "
             f"code = main(['deobfuscate', 'cae-pixel-blur', {str(tmp_path / 'photo.png')!r}, '--out', {str(tmp_path / 'out')!r}]); "
             "print(code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr
    ours = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "photo.png"))).permute(2, 0, 1).int()
    face = torch.from_numpy(np.array(Image.open(tmp_path / "photo.png"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = (denormalize(pretrained("cae-pixel-blur")(normalize(face))).clamp(0, 1)[0] * 255).round().int()
    inner = (slice(None), slice(12, -12), slice(12, -12))  # the crop is the model's frame; its border is feathered
    assert (ours - expected)[inner].abs().max() <= 1


def test_deobfuscate_never_overwrites_an_earlier_result(checkpoint, tmp_path, capsys):
    "The same command twice: the second run writes beside the first one's results, never over them."
    Image.new("RGB", (50, 50), (200, 10, 10)).save(tmp_path / "face.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "face.png").write_bytes(b"someone else's file")
    (tmp_path / "out" / "deobfuscate.json").write_text("an earlier report")
    command = ["deobfuscate", str(checkpoint), str(tmp_path / "face.jpg"), "--out", str(tmp_path / "out"), "--no-detect", "--obfuscate"]
    assert main(command) == 0
    assert (tmp_path / "out" / "face.png").read_bytes() == b"someone else's file"
    assert (tmp_path / "out" / "deobfuscate.json").read_text() == "an earlier report"
    assert capsys.readouterr().out.strip().endswith("face-2.png")
    assert json.loads((tmp_path / "out" / "deobfuscate-2.json").read_text())["report"][0]["output"].endswith("face-2.png")


def test_deobfuscate_never_overwrites_or_merges(checkpoint, tmp_path, capsys):
    "Two inputs with one name get two outputs; an input inside --out is never replaced by its reconstruction."
    for folder in ("a", "b", "out"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (50, 50), (200, 10, 10)).save(tmp_path / "a" / "face.jpg")
    Image.new("RGB", (50, 50), (10, 200, 10)).save(tmp_path / "b" / "face.jpg")
    Image.new("RGB", (50, 50), (10, 10, 200)).save(tmp_path / "out" / "face.png")
    inside = (tmp_path / "out" / "face.png").read_bytes()
    files = [tmp_path / "a" / "face.jpg", tmp_path / "b" / "face.jpg", tmp_path / "out" / "face.png"]
    assert main(["deobfuscate", str(checkpoint), *map(str, files), "--out", str(tmp_path / "out"), "--no-detect", "--obfuscate"]) == 0
    assert (tmp_path / "out" / "face.png").read_bytes() == inside  # the input is intact
    lines = capsys.readouterr().out.strip().splitlines()
    outputs = [l.split(" -> ")[1] for l in lines]
    assert [l.split()[0] for l in lines] == ["[1/3]", "[2/3]", "[3/3]"]  # progress, one line per file
    assert len(lines) == 3 and len(set(outputs)) == 3 and str(tmp_path / "out" / "face.png") not in outputs
    assert all(Image.open(o).size == (50, 50) for o in outputs)  # each photo whole


def test_deobfuscate_any_image_and_reports_bad_files(checkpoint, tmp_path, capsys):
    Image.new("L", (300, 200), 128).save(tmp_path / "grey.png")  # another size, mode and format
    Image.new("RGBA", (40, 90), (10, 200, 30, 200)).save(tmp_path / "tall.webp")  # translucent: WebP keeps its alpha
    (tmp_path / "notes.jpg").write_text("not an image")
    Image.new("RGB", (64, 64)).save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:200])  # truncated
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    bad = ["notes.jpg", "cut.jpg", "empty.png", "folder.png", "missing.jpg"]
    files = [tmp_path / "grey.png", *(tmp_path / b for b in bad), tmp_path / "tall.webp"]
    code = main(["deobfuscate", str(checkpoint), *map(str, files), "--out", str(tmp_path / "out"), "--obfuscate", "--no-detect"])
    assert code == 1  # files failed...
    grey, tall = Image.open(tmp_path / "out" / "grey.png"), Image.open(tmp_path / "out" / "tall.png")  # ...and the others still ran
    assert (grey.size, grey.mode, tall.size, tall.mode) == ((300, 200), "L", (40, 90), "RGBA")  # whole, grey stays grey, alpha kept
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad) and all(f"{b} is not a readable image" in line for b, line in zip(bad, err))
    assert main(["deobfuscate", str(checkpoint), str(files[0]), "--out", str(tmp_path / "out2"), "--obfuscate"]) == 1
    assert capsys.readouterr().err.strip().endswith("grey.png: no face found (give one with --box x,y,w,h); nothing written")
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["deobfuscate.json"]  # no face: no photo written


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'owned'}",))

    torch.save({"model": Payload(), "config": {}, "epoch": 1}, tmp_path / "evil.pt")
    for command in (["evaluate", str(tmp_path / "evil.pt")], ["deobfuscate", str(tmp_path / "evil.pt"), "x.jpg", "--out", str(tmp_path)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "would run code" in err and "system" in err
    assert not (tmp_path / "owned").exists()


def test_missing_checkpoint_is_a_clean_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_console_script_is_installed():
    done = subprocess.run(["cae-course", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "deobfuscate" in done.stdout


def test_sigterm_saves_the_run_and_resume_finishes_it(tmp_path, lfw):
    "`kill` (SIGTERM) stops training between two steps with a checkpoint; the same command with --resume ends the run."
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cae_course.cli", "train", "--out", str(out), "--n-train", "512", "--n-valid", "8",
               "--image-size", "32", "--epochs", "2"]
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "history.json").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first epoch's end: its checkpoint and history are written
    job.send_signal(signal.SIGTERM)
    stderr = job.communicate(timeout=120)[1]
    assert job.returncode == 0, stderr[-2000:]
    assert "SIGTERM: stopping after this step" in stderr and "stopped after epoch 1" in stderr
    saved = load_checkpoint(out / "checkpoint.pt")
    assert len(saved["history"]) == 1 and saved.get("partial", {"epoch": 2})["epoch"] == 2
    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [row["epoch"] for row in load_checkpoint(out / "checkpoint.pt")["history"]] == [1, 2]
