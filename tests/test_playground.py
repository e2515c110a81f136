"""The playground's two threads: the UI thread never touches the model being trained, and a run trains the
obfuscation the controls show, even when it is changed during the run."""
import threading
import time

import pytest
from torch import nn

import cae_course.train as train_module
from cae_course.playground import Playground


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

    def watched_make_batch(images, cfg):
        seen.append((threading.current_thread(), cfg.obfuscation))
        return make_batch(images, cfg)

    monkeypatch.setattr(train_module, "make_batch", watched_make_batch)
    return seen


def small_playground(faces, epochs: int) -> Playground:
    "A playground on the CPU set (through its controls, as a learner would) to a small blur run."
    pg = Playground(faces, device="cpu")
    pg.obfuscation.value, pg.n_train.value, pg.epochs.value = "blur", 32, epochs
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
