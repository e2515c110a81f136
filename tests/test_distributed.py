"""Data-parallel training: 2 CPU processes with gloo on a tiny subset, launched by torchrun."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cae_course.data import load_lfw
from cae_course.losses import make_loss
from cae_course.config import TrainConfig
from cae_course.train import build_model, epoch_batches, make_batch, prepare_faces

# Plain fp32 NCHW, like the reference below: with the engine's channels-last (or bf16 on a CPU with AMX), gradients
# near zero round differently, Adam turns their sign into a full ±lr step, and the weights differ by ~lr.
TINY = dict(n_train=32, n_valid=8, image_size=32, epochs=1, batch_size=8, seed=0, bf16=False, channels_last=False)

RANK_SCRIPT = textwrap.dedent("""
    import sys, torch, torch.distributed as dist
    from cae_course.data import load_lfw
    from cae_course.config import TrainConfig
    from cae_course.train import fit
    run = fit(TrainConfig(**{cfg}), load_lfw(progress=False), device="cpu", progress=False)
    torch.save(run.model.state_dict(), f"{out}/rank{{dist.get_rank()}}.pt")
    dist.destroy_process_group()
""")


def torchrun(*args, cwd, timeout=600):
    "Run torchrun with 2 local CPU processes; fail with its output if it fails."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CAE_COURSE_SCALE": "quick"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.usefixtures("lfw")
def test_two_ranks_agree_and_match_the_same_steps_in_one_process(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(cfg=TINY, out=tmp_path))
    torchrun(str(script), cwd=tmp_path)
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "the two ranks ended with different weights"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank computes (OMP_NUM_THREADS=1): a convolution's sums may split otherwise
    try:
        reference = two_halves_in_one_process(TrainConfig(**TINY), load_lfw(progress=False))
    finally:
        torch.set_num_threads(threads)
    for k, v in reference.named_parameters():
        torch.testing.assert_close(w0[k], v.detach(), rtol=1e-4, atol=1e-5, msg=f"{k}: DDP differs from the reference")


def two_halves_in_one_process(cfg: TrainConfig, faces) -> torch.nn.Module:
    """What 2-process DDP computes, written out in one process: each rank's share of a batch goes through the model
    on its own (so batch norm sees the same 4 faces), and the two gradients are averaged."""
    torch.manual_seed(cfg.seed)
    train_faces, _ = prepare_faces(faces, cfg, "cpu")
    model = build_model(cfg, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss)
    for epoch in range(1, cfg.epochs + 1):
        for step in zip(*(epoch_batches(len(train_faces), cfg, epoch, rank, 2) for rank in (0, 1))):
            opt.zero_grad()
            for idx in step:
                x, y = make_batch(train_faces[idx], cfg)
                (loss_fn(model(x), y) / 2).backward()
            opt.step()
    return model


@pytest.mark.usefixtures("lfw")
def test_torchrun_cli_train(tmp_path):
    torchrun("-m", "cae_course.cli", "train", "--out", str(tmp_path / "run"), "--n-train", "32", "--n-valid", "8",
             "--image-size", "32", "--epochs", "2", cwd=tmp_path)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]  # written once, by rank 0
    assert (tmp_path / "run" / "checkpoint.pt").exists()
