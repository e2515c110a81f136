"""The `cae-course` command: train, evaluate and deobfuscate through `main`, and the installed console script."""
import json
import subprocess

import pytest
from PIL import Image

from cae_course.cli import main, make_parser
from cae_course.train import Run

TINY = ["--n-train", "16", "--n-valid", "8", "--image-size", "32", "--epochs", "1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, lfw):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out / "checkpoint.pt"


def test_help_for_every_command():
    for command in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["deobfuscate", "--help"]):
        with pytest.raises(SystemExit) as done:
            make_parser().parse_args(command)
        assert done.value.code == 0


def test_every_train_option_reaches_the_config(tmp_path, lfw, monkeypatch):
    seen = {}

    def fake_fit(cfg, faces, **kwargs):  # record the configuration instead of training
        seen["cfg"] = cfg
        return Run(model=None, config=cfg)

    monkeypatch.setattr("cae_course.cli.fit", fake_fit)
    main(["train", "--out", str(tmp_path), "--arch", "rescae", "--loss", "mixed", "--rho", "0.5", "--sigma", "2.5",
          "--obfuscation", "pixelate", "--block", "4", "--no-bf16", "--lr", "1e-3", *TINY])
    cfg = seen["cfg"]
    assert (cfg.arch, cfg.loss, cfg.rho, cfg.sigma, cfg.obfuscation, cfg.block, cfg.bf16, cfg.lr) == (
        "rescae", "mixed", 0.5, 2.5, "pixelate", 4, False, 1e-3)
    assert (cfg.n_train, cfg.image_size, cfg.epochs) == (16, 32, 1)


def test_evaluate_writes_json(checkpoint, tmp_path, capsys):
    assert main(["evaluate", str(checkpoint), "-n", "16", "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["images"] == 16 and metrics["split"] == "test"
    assert 0 < metrics["ssim"] <= 1 and metrics["psnr"] > 0 and metrics["config"]["image_size"] == 32


def test_deobfuscate_any_image_and_reports_bad_files(checkpoint, tmp_path, capsys):
    Image.new("L", (300, 200), 128).save(tmp_path / "grey.png")  # another size, mode and format
    Image.new("RGBA", (40, 90), (10, 200, 30, 255)).save(tmp_path / "tall.webp")
    (tmp_path / "notes.jpg").write_text("not an image")
    files = [tmp_path / "grey.png", tmp_path / "notes.jpg", tmp_path / "tall.webp"]
    code = main(["deobfuscate", str(checkpoint), *map(str, files), "--out", str(tmp_path / "out"), "--obfuscate"])
    assert code == 1  # one file failed...
    assert Image.open(tmp_path / "out" / "grey.png").size == (32, 32)  # ...and the others still ran
    assert Image.open(tmp_path / "out" / "tall.png").size == (32, 32)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.jpg is not a readable image" in err[0]


def test_missing_checkpoint_is_a_clean_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_console_script_is_installed():
    done = subprocess.run(["cae-course", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "deobfuscate" in done.stdout
