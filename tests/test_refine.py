"""Chapter 05a's refiners and chapter 09c's `pack_run`: a refiner starts as its classical method, learns past it, and
ships like the paper's models."""
import dataclasses
import json

import pytest
import torch

from cae_course.checkpoint import rng_state
from cae_course.classical import classical_model, lanczos, wiener
from cae_course.config import TrainConfig
from cae_course.data import LFW, SCALES, split_faces
from cae_course.models import make_model
from cae_course.obfuscate import obfuscate
from cae_course.reproduce import pack_run
from cae_course.shipped import pretrained
from cae_course.storage import save_atomic
from cae_course.train import evaluate, fit, make_batch
from cae_course.wild import quantize8


def test_eight_bit_batches_are_rounded_and_the_paper_batches_are_not(lfw):
    faces = split_faces(lfw, "valid", 4)
    cfg = TrainConfig(eight_bit=True)
    x, y = make_batch(faces, cfg)
    assert torch.equal(quantize8(x), x)
    float_x, float_y = make_batch(faces, dataclasses.replace(cfg, eight_bit=False))
    assert torch.equal(y, float_y) and not torch.equal(float_x, quantize8(float_x))
    assert (x - float_x).abs().max() <= 1 / 255 + 1e-6  # half a step of 2/255


def test_wild_training_batches_vary_and_validation_stays_fixed(lfw):
    faces = split_faces(lfw, "valid", 4)
    cfg = TrainConfig(wild=True, eight_bit=True)
    torch.manual_seed(0)
    a, b = make_batch(faces, cfg, training=True)[0], make_batch(faces, cfg, training=True)[0]
    assert not torch.equal(a, b)  # a new draw for every batch
    assert torch.equal(make_batch(faces, cfg)[0], make_batch(faces, dataclasses.replace(cfg, wild=False))[0])


@pytest.mark.parametrize("name,kind,method", [("wiener-skipcae", "blur", wiener), ("lanczos-skipcae", "pixelate", lanczos)])
def test_a_fresh_refiner_is_its_classical_method(name, kind, method):
    x = quantize8(obfuscate(torch.rand(3, 3, 64, 64) * 2 - 1, kind))
    with torch.no_grad():
        assert torch.equal(make_model(name, image_size=64).eval()(x), method(x))


def test_a_refiner_learns_past_the_wiener_filter(lfw):
    "128 steps at the quick scale already beat the classical control it starts from (a broken refiner would not)."
    torch.manual_seed(0)
    cfg = TrainConfig.for_scale(SCALES["quick"], arch="wiener-skipcae", eight_bit=True, epochs=1, n_train=1024,
                                n_valid=64, lr=1e-3)
    run = fit(cfg, lfw, device="cpu", progress=False)
    valid = split_faces(lfw, "valid", 64, cfg.image_size)
    learned, control = evaluate(run.model, valid, cfg), evaluate(classical_model("wiener"), valid, cfg)
    assert learned["psnr"] > control["psnr"] + 0.08, (learned, control)
    assert learned["input_psnr"] == control["input_psnr"]  # the same 8-bit inputs


def fake_run(folder, cfg: TrainConfig, epoch: int):
    "A checkpoint as `fit` writes it, of a fresh model (a refiner: exactly its classical method)."
    model = make_model(cfg.arch, image_size=cfg.image_size)
    history = [{"epoch": e, "seconds": 60.0, "device": "cpu", "precision": "fp32"} for e in range(1, epoch + 1)]
    save_atomic({"model": model.state_dict(), "optimizer": {}, "epoch": epoch, "rng": rng_state(),
                 "config": dataclasses.asdict(cfg), "history": history}, folder / "checkpoint.pt")


def test_pack_run_ships_a_finished_run_with_its_scores(lfw, tmp_path):
    faces = LFW(lfw.images[:300], lfw.names[:300], lfw.source)  # 84 test faces
    cfg = TrainConfig(arch="wiener-skipcae", eight_bit=True, epochs=2)
    fake_run(tmp_path, cfg, 1)
    with pytest.raises(ValueError, match="not a finished full-scale run"):
        pack_run(tmp_path, "wiener-test", "Wiener + SkipCAE", faces, tmp_path / "weights")
    fake_run(tmp_path, cfg, 2)
    meta = pack_run(tmp_path, "wiener-test", "Wiener + SkipCAE", faces, tmp_path / "weights", command="train it")
    assert json.loads((tmp_path / "weights" / "wiener-test.json").read_text()) == meta
    assert (meta["provenance"], meta["epochs"], meta["train_seconds"], meta["command"]) == ("full-scale", 2, 120.0, "train it")
    test = split_faces(faces, "test")
    control = evaluate(classical_model("wiener"), test, cfg)
    assert meta["test"]["faces"] == len(test) == 84
    assert meta["test"]["int8"]["psnr"] == pytest.approx(control["psnr"], abs=1e-3)  # a fresh refiner is the filter
    assert meta["test"]["float"]["psnr"] == pytest.approx(control["psnr"], abs=1e-3)
    model = pretrained("wiener-test", folder=tmp_path / "weights")
    assert type(model).__name__ == "Refiner" and not model.training


def shipped_refiners(wild: bool) -> list[str]:
    "The shipped refiners: the specialists of chapter 05a (wild=False), or chapter 11's wild models."
    from cae_course.models import MODELS
    from cae_course.shipped import pretrained_info, pretrained_names

    return [n for n in pretrained_names() if pretrained_info(n)["config"]["arch"] not in ("cae", "vcae", "rescae", "skipcae")
            and pretrained_info(n)["config"]["arch"] in MODELS and pretrained_info(n)["config"].get("wild", False) == wild]


@pytest.mark.parametrize("name", shipped_refiners(wild=False))
def test_shipped_refiners_beat_their_classical_front(lfw, name):
    "On the gate's 32 test faces, in 8-bit weights, at the setting it was made for: clearly better than the classical method the refiner starts from."
    from cae_course.shipped import pretrained_info

    info = pretrained_info(name)
    cfg = TrainConfig(**info["config"])
    model = pretrained(name)
    faces = split_faces(lfw, "test", 32)
    assert cfg.eight_bit and info["provenance"] == "full-scale"
    learned, control = evaluate(model, faces, cfg), evaluate(classical_model(model.front), faces, cfg)
    assert learned["psnr"] > control["psnr"] + 0.3, (learned, control)
    assert learned["ssim"] > control["ssim"], (learned, control)


@pytest.mark.parametrize("name,setting", [("wild-blur", "blur-s4-jpeg75"), ("wild-pixelate", "pixelate-n12")])
def test_wild_models_beat_their_blind_front_away_from_the_paper(lfw, name, setting):
    "On 32 test faces of chapter 11's suite (a JPEG'd σ 4 blur; 12-pixel blocks at random grid phases): clearly past the input and the blind front."
    from cae_course.data import denormalize
    from cae_course.metrics import psnr
    from cae_course.shipped import pretrained_names
    from cae_course.wild import wild_obfuscate

    assert name in shipped_refiners(wild=True) == sorted(n for n in pretrained_names() if n.startswith("wild-"))
    model, faces = pretrained(name), split_faces(lfw, "test", 32)
    x, _ = wild_obfuscate(faces, setting)
    with torch.no_grad():
        learned, front = model(x), classical_model(model.front)(x)
    score = lambda y: psnr(denormalize(y).clamp(0, 1), faces.float() / 255).mean().item()
    assert score(learned) > score(front) + 0.5 and score(learned) > score(x) + 0.5, (score(learned), score(front), score(x))


def test_a_run_grows_a_shipped_refiner_into_one_whose_body_sees_the_input(lfw):
    "`fit(start_from=…)` of a `-both` refiner from the refiner it grows from begins exactly as that model; any other start is refused."
    cfg = TrainConfig.for_scale(SCALES["quick"], arch="wiener-blind-skipcae-both", wild=True, eight_bit=True,
                                image_size=112, epochs=1, n_train=8, n_valid=8)
    run = fit(cfg, lfw, device="cpu", progress=False, start_from="wild-blur", should_stop=lambda: True)
    x = make_batch(split_faces(lfw, "test", 8), dataclasses.replace(cfg, wild=False, sigma=2.0))[0]
    with torch.no_grad():
        grown, start = run.model.eval()(x), pretrained("wild-blur").eval()(x)
    torch.testing.assert_close(grown, start, rtol=0, atol=1e-5)
    assert (grown - wiener(x, 2.0, 13)).abs().mean() > 0.005  # not a fresh refiner: the shipped correction came along
    for wrong in ("wild-pixelate", "cae-pixel-blur"):  # another front and obfuscation; another architecture
        with pytest.raises(ValueError, match="cannot start"):
            fit(cfg, lfw, device="cpu", progress=False, start_from=wrong, should_stop=lambda: True)
    with pytest.raises(ValueError, match="of pixelate"):  # the right architecture, but a blur run
        fit(dataclasses.replace(cfg, arch="lanczos-blind-skipcae-both"), lfw, device="cpu", progress=False,
            start_from="wild-pixelate", should_stop=lambda: True)
