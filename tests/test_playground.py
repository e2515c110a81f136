"""The playground's two threads (the UI thread never touches the model being trained, and a run trains the
obfuscation the controls show, even when it is changed during the run), and what a learner reads and can press:
the shipped model it starts from, per-metric verdicts, the loss named, no stale metrics, only controls that act."""
import itertools
import threading
import time

import pytest
from torch import nn

import cae_course.train as train_module
from cae_course.data import SCALES
from cae_course.playground import Playground, curve_figure, metrics_line, playground_config


@pytest.fixture
def watched_models(monkeypatch):
    "Every model `fit` builds, and (what, thread) for each forward pass through it and each switch of its mode."
    models, touches = [], []
    build, switch = train_module.build_model, nn.Module.train

    def note(module, what):  # returns None: a forward pre-hook that returned something would replace the input
        if any(module is m for m in models):
            touches.append((what, threading.current_thread()))

    def watched_build(cfg, device):
        model = build(cfg, device)
        model.register_forward_pre_hook(lambda module, _: note(module, "forward"))  # copies of it keep the hook
        models.append(model)
        return model

    def watched_switch(self, mode=True):  # `eval()` calls `train(False)`
        note(self, "train" if mode else "eval")
        return switch(self, mode)

    monkeypatch.setattr(train_module, "build_model", watched_build)
    monkeypatch.setattr(nn.Module, "train", watched_switch)
    return models, touches


@pytest.fixture
def training_batches(monkeypatch):
    "(thread, obfuscation) of every batch `make_batch` prepares inside the training engine."
    seen, make_batch = [], train_module.make_batch

    def watched_make_batch(images, cfg, training=False):
        seen.append((threading.current_thread(), cfg.obfuscation))
        return make_batch(images, cfg, training)

    monkeypatch.setattr(train_module, "make_batch", watched_make_batch)
    return seen


def small_playground(faces, epochs: int) -> Playground:
    "A playground on the CPU set (through its controls, as a learner would) to a small blur run: 4 steps an epoch."
    pg = Playground(faces, device="cpu")
    pg.obfuscation.value, pg.n_train.value, pg.epochs.value = "blur", 16, epochs
    return pg


def wait_until(
    done,  # () -> bool
    thread: threading.Thread,  # the training thread, which must stay alive meanwhile
    timeout: float = 300,  # seconds
):
    "Poll `done` until it holds; fail if the training thread ends or time runs out first."
    end = time.monotonic() + timeout
    while not done():
        assert thread.is_alive() and time.monotonic() < end, "the run ended (or hung) before it got there"
        time.sleep(0.05)


def test_the_ui_thread_never_touches_the_model_being_trained(lfw, watched_models):
    models, touches = watched_models
    pg = small_playground(lfw, epochs=3)
    pg.start()
    while pg.thread.is_alive():  # a learner dragging σ all through the run
        pg.sigma.value = 3.0 if pg.sigma.value != 3.0 else 5.0
        time.sleep(0.01)
    assert "finished" in pg.status.value, pg.status.value
    assert len(models) == 1 and len(pg.run.history) == 3
    by_ui = [what for what, thread in touches if thread is threading.main_thread()]
    assert by_ui == [], f"the UI thread ran or switched the model being trained: {by_ui[:5]}"
    assert pg.model is not models[0] and not pg.model.training  # the preview draws with a snapshot


def test_a_run_trains_the_obfuscation_the_controls_show(lfw, training_batches):
    pg = small_playground(lfw, epochs=30)
    pg.start()
    worker = lambda: [kind for thread, kind in training_batches if thread is pg.thread]
    wait_until(lambda: len(worker()) >= 3, pg.thread)
    pg.obfuscation.value = "pixelate"  # switched during the run
    switched = len(worker())
    wait_until(lambda: len(worker()) >= switched + 3, pg.thread)
    pg.stop()
    pg.thread.join(timeout=120)
    kinds = worker()
    assert set(kinds[:3]) == {"blur"}
    assert set(kinds[switched + 1:]) == {"pixelate"}, kinds  # from the next step on (one batch may be in flight)
    assert pg.config.obfuscation == "pixelate"


def test_the_preview_starts_from_the_shipped_model_of_the_obfuscation(lfw):
    pg = Playground(lfw, device="cpu", config=playground_config(SCALES["quick"]))
    assert pg.start_name() == "cae-pixel-pixelate" and pg.model is pg.shipped["cae-pixel-pixelate"]
    pg.obfuscation.value = "blur"
    assert pg.model is pg.shipped["cae-pixel-blur"] and "fine-tune the shipped <b>cae-pixel-blur</b>" in pg.status.value
    pg.start_from.value = "scratch"
    assert pg.model is None and "train cae from scratch" in pg.status.value


def test_the_metrics_line_says_which_metric_is_ahead():
    line = metrics_line({"valid_psnr": 20.15, "valid_ssim": 0.525, "valid_input_psnr": 20.57, "valid_input_ssim": 0.452})
    assert "PSNR <b>20.15 dB</b>, 0.42 dB behind the obfuscated input (20.57 dB)" in line
    assert "SSIM <b>0.525</b>, 0.073 ahead of the obfuscated input (0.452)" in line


def test_the_status_names_the_loss_and_rho_and_says_when_it_validates(lfw):
    pg = Playground(lfw, device="cpu")
    pg.loss.value, pg.rho.value = "mixed", 0.5
    assert "mixed loss (ρ = 0.5)" in pg.status.value  # before Train...
    pg.config, pg.steps_per_epoch = pg.read_config(), 16  # ...and during a run, as `train` sets them
    pg.on_step(8, 1.7)
    assert "mixed loss (ρ = 0.5)" in pg.status.value and "validating" not in pg.status.value
    pg.on_step(16, 1.6)  # the epoch's last step: the validation comes next, and takes a while
    assert pg.status.value.endswith("validating…"), pg.status.value
    assert "VGG16" in pg.loss_note.value and "tens of times the pixel loss" in pg.loss_note.value


def test_metrics_of_other_settings_are_never_shown(lfw):
    pg = small_playground(lfw, epochs=1)
    pg.start()
    pg.thread.join(timeout=300)
    shown = pg.metrics.value
    assert "finished" in pg.status.value and "epoch 1" in shown and "dB" in shown, (pg.status.value, shown)
    for control, value, label in ((pg.sigma, 2.0, "Gaussian blur (σ = 2)"), (pg.obfuscation, "pixelate", "pixelation (n = 8)"),
                                  (pg.block, 12, "pixelation (n = 12)")):
        pg.metrics.value = shown
        control.value = value  # after the run, as after Stop
        assert "dB" not in pg.metrics.value and label in pg.metrics.value, (control.description, pg.metrics.value)


def test_only_the_controls_that_act_are_enabled(lfw):
    pg = Playground(lfw, device="cpu")
    for obfuscation, loss in itertools.product(("blur", "pixelate"), ("pixel", "perceptual", "mixed")):
        pg.obfuscation.value, pg.loss.value = obfuscation, loss
        assert (pg.sigma.disabled, pg.block.disabled, pg.rho.disabled) == (
            obfuscation != "blur", obfuscation != "pixelate", loss != "mixed"), (obfuscation, loss)


def test_the_faces_slider_starts_small_and_doubles(lfw):
    pg = Playground(lfw, device="cpu", config=playground_config(SCALES["quick"]))
    sizes = pg.n_train.options
    assert pg.n_train.value == 32 and (sizes[0], sizes[-1]) == (16, 7620)
    assert all(1 < b / a <= 2 for a, b in zip(sizes, sizes[1:]))  # log-spaced: each step at most doubles


def test_the_psnr_legend_hides_no_line():
    rows = [{"epoch": e, "valid_psnr": 20.0 + e, "valid_input_psnr": 20.6} for e in range(3)]
    fig = curve_figure([4, 8], [0.03, 0.02], rows)
    fig.canvas.draw()
    axes, legend = fig.axes[1], fig.axes[1].get_legend()
    assert not axes.get_window_extent().overlaps(legend.get_window_extent())
    assert legend.get_window_extent().x1 <= fig.bbox.x1  # beside the plot, not cut off


def test_scores_of_a_setting_the_controls_have_left_are_not_shown(lfw):
    pg = Playground(lfw, device="cpu", config=playground_config(SCALES["quick"]))
    pg.config, pg.started_from = pg.read_config(), pg.start_name()  # as `train` sets them: the run's setting, n = 8
    row = {"epoch": 0, "valid_psnr": 26.0, "valid_ssim": 0.77, "valid_input_psnr": 22.9, "valid_input_ssim": 0.55}
    pg.show_scores(row)
    assert pg.metrics.value.startswith("before training (cae-pixel-pixelate) at pixelation (n = 8)"), pg.metrics.value
    pg.block.value = 12  # moved while the run validated at n = 8
    pg.show_scores(row)
    assert "dB" not in pg.metrics.value and "pixelation (n = 12)" in pg.metrics.value, pg.metrics.value
