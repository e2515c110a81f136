"""cae_course.train: determinism, exact resume, checkpoints and their failure modes, stopping."""
import dataclasses
import json
import pickle
from unittest.mock import patch

import pytest
import torch
from torch import nn

import cae_course.train as lib
from cae_course.train import (NonFiniteLossError, TrainConfig, epoch_batches, fit, load_checkpoint, load_model,
                              make_batch)

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
    with pytest.raises(ValueError, match="not a readable cae_course checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
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
