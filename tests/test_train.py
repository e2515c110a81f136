"""cae_course.train: determinism, exact resume, checkpoints and their failure modes, stopping."""
import dataclasses
import json
import pickle
from unittest.mock import patch

import pytest
import torch
from torch import nn

import cae_course.engine as engine
import cae_course.train as lib
from cae_course.config import TrainConfig
from cae_course.data import split_indices
from cae_course.engine import engine_mode
from cae_course.train import NonFiniteLossError, epoch_batches, fit, learning_rate, load_checkpoint, load_model, make_batch

TINY = TrainConfig(n_train=24, n_valid=8, image_size=32, epochs=2, batch_size=8)


def weights(model):
    return [t.clone() for t in model.state_dict().values()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_same_seed_same_numbers(lfw):
    a, b = (fit(TINY, lfw, device="cpu", progress=False) for _ in range(2))
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert same(weights(a.model), weights(b.model))
    c = fit(dataclasses.replace(TINY, seed=1), lfw, device="cpu", progress=False)
    assert not same(weights(a.model), weights(c.model))


def test_resume_continues_exactly(lfw, tmp_path):
    straight = fit(TINY, lfw, device="cpu", progress=False)
    fit(dataclasses.replace(TINY, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    resumed = fit(TINY, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert same(weights(resumed.model), weights(straight.model))
    assert json.loads((tmp_path / "history.json").read_text()) == resumed.history
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_01.png", "epoch_02.png"]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files


def test_vcae_resume_restores_its_random_state(lfw, tmp_path):
    cfg = dataclasses.replace(TINY, arch="vcae", beta=0.01)
    straight = fit(cfg, lfw, device="cpu", progress=False)
    fit(dataclasses.replace(cfg, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    resumed = fit(cfg, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
    assert same(weights(resumed.model), weights(straight.model))


def test_resume_needs_a_checkpoint_of_the_same_architecture(lfw, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        fit(TINY, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
    fit(dataclasses.replace(TINY, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="holds a 'cae' model, but this run trains 'rescae'"):
        fit(dataclasses.replace(TINY, arch="rescae"), lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)


class DivergingLoss(nn.Module):
    def forward(self, pred, target):
        return ((pred - target) ** 2).mean() * float("nan")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lfw, tmp_path):
    fit(dataclasses.replace(TINY, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    with patch.object(lib, "make_loss", lambda *a, **k: DivergingLoss()):
        with pytest.raises(NonFiniteLossError, match="last good checkpoint, epoch 1"):
            fit(TINY, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good


def test_checkpoints_load_safely(lfw, tmp_path):
    run = fit(dataclasses.replace(TINY, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    model, cfg = load_model(tmp_path / "checkpoint.pt")
    assert cfg == dataclasses.replace(TINY, epochs=1) and not model.training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    run.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), run.model(x))

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model": Evil(), "config": {}, "epoch": 1}))
    with pytest.raises(ValueError, match=r"refused: loading it would run code \(builtins.print\)") as refused:
        load_checkpoint(tmp_path / "evil.pt")
    assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value)  # one line, no bad advice
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable cae_course checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cae_course checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_should_stop_ends_the_run_between_steps(lfw):
    calls = []
    run = fit(dataclasses.replace(TINY, epochs=5), lfw, device="cpu", progress=False,
              should_stop=lambda: len(calls) > 0, on_epoch=lambda row, run: calls.append(row))
    assert run.stopped and len(run.history) == 1


def stop_after_steps(n):
    "A `should_stop` that turns true after it has been polled `n` times (so after n steps)."
    polls = []
    return lambda: polls.append(1) or len(polls) > n


def test_a_run_stopped_mid_epoch_resumes_exactly(lfw, tmp_path):
    cfg = dataclasses.replace(TINY, arch="vcae", beta=0.01, n_train=40)  # 5 steps an epoch; the VCAE draws noise
    straight = fit(cfg, lfw, device="cpu", progress=False)
    stopped = fit(cfg, lfw, out_dir=tmp_path, device="cpu", progress=False, should_stop=stop_after_steps(7))
    assert stopped.stopped and len(stopped.history) == 1
    partial = load_checkpoint(tmp_path / "checkpoint.pt")["partial"]
    assert partial["epoch"] == 2 and partial["step"] == 2 and partial["loss_sum"] > 0
    resumed = fit(cfg, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert same(weights(resumed.model), weights(straight.model))
    assert "partial" not in load_checkpoint(tmp_path / "checkpoint.pt")  # the finished epoch replaced it


def test_mid_epoch_checkpoints_are_written_as_time_passes(lfw, tmp_path):
    saved = []
    with patch.object(lib, "save_atomic", lambda obj, path: saved.append(obj.get("partial"))):
        fit(dataclasses.replace(TINY, epochs=1, n_train=40), lfw, out_dir=tmp_path, device="cpu", progress=False,
            save_every=0.0)
    assert [p and p["step"] for p in saved] == [1, 2, 3, 4, None]  # after every step but the last, then the epoch's


def test_mid_epoch_checkpoints_need_no_existing_folder(lfw, tmp_path):
    out = tmp_path / "new" / "run"  # a fresh run's folder: the first mid-epoch save comes before any sample is drawn
    stopped = fit(dataclasses.replace(TINY, n_train=40), lfw, out_dir=out, device="cpu", progress=False, save_every=0.0,
                  should_stop=stop_after_steps(2))
    assert stopped.stopped and load_checkpoint(out / "checkpoint.pt")["partial"]["step"] == 2


def test_cpu_bf16_path_learns_and_repeats_bit_for_bit(lfw, monkeypatch):
    monkeypatch.setenv("CAE_COURSE_THREADS", "fixed")  # the same threads in both runs: the engine would follow the load
    cfg = dataclasses.replace(TINY, n_train=64, epochs=3)
    with patch.object(engine, "cpu_bf16_is_fast", lambda: True):  # the path an AMX or Zen 4 CPU takes, wherever this runs
        a, b = (fit(cfg, lfw, device="cpu", progress=False) for _ in range(2))
    assert {r["precision"] for r in a.history} == {"bf16"}
    losses = [r["train_loss"] for r in a.history]
    assert losses[-1] < 0.8 * losses[0]
    assert losses == [r["train_loss"] for r in b.history] and same(weights(a.model), weights(b.model))


def test_one_cycle_warms_up_then_anneals():
    cfg = TrainConfig(lr=1e-3, schedule="onecycle")
    lrs = [learning_rate(cfg, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 9
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 2e-5
    assert learning_rate(TrainConfig(lr=1e-3), 57, 100) == 1e-3  # the paper's constant rate
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        learning_rate(TrainConfig(schedule="cosine"), 0, 10)


def test_engine_mode_is_recorded_and_bf16_only_where_it_is_fast(lfw):
    run = fit(dataclasses.replace(TINY, epochs=1), lfw, device="cpu", progress=False)
    mode = engine_mode(torch.device("cpu"), TINY)
    assert {k: run.history[0][k] for k in mode} == mode
    with patch.object(engine, "cpu_bf16_is_fast", lambda: True):
        assert engine_mode(torch.device("cpu"), TINY)["precision"] == "bf16"
        assert engine_mode(torch.device("cpu"), dataclasses.replace(TINY, bf16=False))["precision"] == "fp32"
    with patch.object(engine, "cpu_bf16_is_fast", lambda: False):
        assert engine_mode(torch.device("cpu"), TINY) == {"device": "cpu", "precision": "fp32", "channels_last": True}


@pytest.mark.parametrize("vendor, amx, avx512_bf16, fast", [
    ("GenuineIntel", True, True, True),     # AMX tiles: bf16 3.8x float32 (chapter 07)
    ("GenuineIntel", False, True, False),   # AVX512-BF16 alone on Intel: bf16 slower than float32
    ("AuthenticAMD", False, True, True),    # Zen 4: the same instructions, bf16 about 1.9x float32
    ("AuthenticAMD", False, False, False),  # no bf16 instructions at all
    ("", False, True, False),               # vendor unknown (no /proc/cpuinfo): float32
])
def test_bf16_is_chosen_on_the_cpus_where_it_was_measured_faster(vendor, amx, avx512_bf16, fast):
    with patch.object(torch.cpu, "_is_amx_tile_supported", lambda: amx), \
         patch.object(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16), \
         patch.object(engine, "cpu_vendor", lambda: vendor):
        assert engine.cpu_bf16_is_fast() is fast


def test_cpu_vendor_reads_linux_cpuinfo():
    with open("/proc/cpuinfo") as f:
        expected = next(line.split(":")[1].strip() for line in f if line.startswith("vendor_id"))
    assert engine.cpu_vendor() == expected


def test_a_run_begun_in_float32_is_resumed_in_float32(lfw, tmp_path):
    with patch.object(engine, "cpu_bf16_is_fast", lambda: False):  # the first epoch on a CPU where float32 is faster
        fit(dataclasses.replace(TINY, epochs=1), lfw, out_dir=tmp_path, device="cpu", progress=False)
    with patch.object(engine, "cpu_bf16_is_fast", lambda: True):  # resumed where bf16 would be chosen for a new run
        resumed = fit(TINY, lfw, out_dir=tmp_path, resume=True, device="cpu", progress=False)
        fresh = fit(TINY, lfw, device="cpu", progress=False)
    assert [r["precision"] for r in resumed.history] == ["fp32", "fp32"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["bf16"] is False
    assert [r["precision"] for r in fresh.history] == ["bf16", "bf16"]


def test_batches_cover_every_face_once_and_shard_across_ranks():
    cfg = TrainConfig(batch_size=8, seed=3)
    batches = epoch_batches(30, cfg, epoch=1)
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(30))
    shards = [epoch_batches(30, cfg, 1, rank, 2) for rank in (0, 1)]
    for whole, a, b in zip(batches, *shards):
        assert torch.equal(torch.cat([a, b]).sort().values, whole.sort().values)
    assert not torch.equal(torch.cat(epoch_batches(30, cfg, 2)), torch.cat(batches))  # a new order each epoch


def test_make_batch_obfuscates_the_input_only():
    faces = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    x, y = make_batch(faces, TrainConfig(obfuscation="pixelate", block=8))
    assert x.shape == y.shape == (4, 3, 32, 32) and y.min() >= -1 and y.max() <= 1
    blocks = x.unfold(2, 8, 8).unfold(3, 8, 8)  # every 8×8 block of the input is flat
    assert torch.allclose(blocks.amax((-1, -2)), blocks.amin((-1, -2)), atol=1e-6)


def test_a_protection_run_trains_on_that_frontier_setting_with_fresh_phases():
    from cae_course.frontier import FRONTIER_SEED, protect, protection_named

    faces = torch.randint(0, 256, (6, 3, 48, 48), dtype=torch.uint8)
    cfg = TrainConfig(obfuscation="pixelate", protection="dp-pixelate-n16-e1")
    x, y = make_batch(faces, cfg)  # validation: the same draw every time
    assert torch.equal(x, protect(faces, protection_named("dp-pixelate-n16-e1"), FRONTIER_SEED + 1)[0])
    assert torch.equal(y, lib.normalize(faces))
    torch.manual_seed(0)
    a, b = make_batch(faces, cfg, training=True)[0], make_batch(faces, cfg, training=True)[0]
    assert not torch.equal(a, b)  # new noise per training batch
    torch.manual_seed(0)
    assert torch.equal(make_batch(faces, cfg, training=True)[0], a)  # from the run's random state: resumable
    with pytest.raises(ValueError, match="unknown protection 'blur-s99'"):
        make_batch(faces, TrainConfig(protection="blur-s99"))


def test_an_identity_split_run_never_validates_on_a_person_it_trained_on(lfw):
    train, valid = lib.prepare_faces(lfw, TrainConfig(split="identity", image_size=32), "cpu")
    groups = split_indices(len(lfw), groups=lfw.names)
    names = [{lfw.names[i] for i in part.tolist()} for part in groups]
    assert len(train) == len(groups[0]) and len(valid) == len(groups[1]) and not names[0] & names[1]
    by_image = lib.prepare_faces(lfw, TrainConfig(image_size=32), "cpu")[0]
    assert len(by_image) != len(train) or not torch.equal(by_image, train)


def test_the_engine_flushes_denormals_on_a_cpu():
    "Denormal floats (below ~1.2e-38) make late CPU steps ~3x slower; importing the engine flushes them to zero."
    assert engine.CPU_FLUSHES_DENORMALS
    tiny = torch.tensor([1e-40])  # stored as 0 when flushed, else a denormal float32
    assert (tiny * 1.0).item() == 0 and (torch.full((1000,), 1e-20).square() == 0).all()


def test_compiled_model_trains_like_the_eager_one(lfw):
    # torch.compile wraps the model in a module that refuses len(): the engine must call it, never test its truth
    cfg = dataclasses.replace(TINY, epochs=1)
    eager, compiled = (fit(dataclasses.replace(cfg, compile=c), lfw, device="cpu", progress=False) for c in (False, True))
    assert compiled.history[0]["train_loss"] == pytest.approx(eager.history[0]["train_loss"], rel=1e-3)
    assert compiled.history[0]["valid_psnr"] == pytest.approx(eager.history[0]["valid_psnr"], abs=0.01)


def test_each_epoch_is_reported_in_one_line_on_stderr(lfw, capsys):
    # a long run in the background is followed in its log: each epoch's scores against its input, stdout left alone
    run = fit(TINY, lfw, device="cpu", progress=True)
    captured = capsys.readouterr()
    for row in run.history:
        assert (f"epoch {row['epoch']}/2: train loss {row['train_loss']:.4f} · valid PSNR {row['valid_psnr']:.2f} dB"
                f", SSIM {row['valid_ssim']:.3f} (input {row['valid_input_psnr']:.2f} dB") in captured.err
    assert "valid PSNR" not in captured.out
    fit(TINY, lfw, device="cpu", progress=False)
    assert "valid PSNR" not in capsys.readouterr().err
