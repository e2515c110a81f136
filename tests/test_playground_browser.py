"""The playground in a real browser: JupyterLab on 127.0.0.1, headless Chromium driven by Playwright.

Skipped when Chromium or Playwright is missing, unless CAE_COURSE_REQUIRE_BROWSER=1 (CI sets it), which turns
the skip into a failure so that CI can never pass without running it.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def require_browser():
    "Skip (or fail in CI) when the browser stack is not installed."
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CAE_COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path, lfw):
    "JupyterLab serving a temporary copy of the playground notebook; yields the notebook's URL."
    require_browser()
    shutil.copy(ROOT / "nbs" / "08_playground.ipynb", tmp_path / "playground.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "CAE_COURSE_SCALE": "quick", "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.disable_check_xsrf=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within a minute")
        yield f"http://127.0.0.1:{port}/lab/tree/playground.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_playground_trains_from_the_browser(jupyter_lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(jupyter_lab)
            page.locator(".jp-NotebookPanel").first.wait_for(timeout=120_000)
            page.locator(".jp-Notebook-cell").first.wait_for(timeout=60_000)
            # Run the notebook's cells up to the playground: click into the first cell, then "run all above" the
            # cell after the playground by running cells one at a time with Shift+Enter until the widget shows.
            page.locator(".jp-Notebook-cell").first.click()
            train = page.locator("button.widget-button", has_text="Train").first
            for _ in range(40):
                page.keyboard.press("Shift+Enter")
                try:
                    train.wait_for(timeout=1_500)
                    break
                except Exception:
                    pass
            train.wait_for(timeout=180_000)
            page.screenshot(path=str(tmp_path / "playground-before.png"))

            grid = page.locator(".widget-image").first
            metrics = page.locator(".widget-html", has_text="validation PSNR").first
            status = page.locator(".widget-html").first
            src0, metrics0 = grid.get_attribute("src"), metrics.inner_text()

            # move the σ, n and ρ sliders with the keyboard, as a person would with arrow keys
            for label in ("σ (blur)", "n (pixels)", "ρ (mixed)"):
                slider = page.locator(".widget-slider", has_text=label).first
                readout = slider.locator(".widget-readout")
                before = readout.inner_text()
                slider.locator(".noUi-handle").focus()
                page.keyboard.press("ArrowRight")
                page.keyboard.press("ArrowRight")
                expect(readout).not_to_have_text(before, timeout=10_000)
            # σ moved: the preview was redrawn
            expect(grid).not_to_have_attribute("src", src0, timeout=30_000)
            src1 = grid.get_attribute("src")

            train.click()
            expect(page.locator("button.widget-button", has_text="Stop").first).to_be_enabled(timeout=30_000)
            expect(metrics).not_to_have_text(metrics0, timeout=240_000)  # an epoch finished: new metrics
            assert "epoch" in metrics.inner_text() and "dB" in metrics.inner_text()
            expect(grid).not_to_have_attribute("src", src1, timeout=30_000)  # reconstructions appeared
            page.screenshot(path=str(tmp_path / "playground-trained.png"))

            page.locator("button.widget-button", has_text="Stop").first.click()
            expect(page.locator(".widget-html", has_text="stopped").or_(page.locator(".widget-html", has_text="finished")).first
                   ).to_be_visible(timeout=120_000)
        finally:
            shots = ROOT / "tests" / "artifacts"
            if os.environ.get("CAE_COURSE_KEEP_SCREENSHOTS"):
                shots.mkdir(exist_ok=True)
                for png in tmp_path.glob("*.png"):
                    shutil.copy(png, shots / png.name)
            browser.close()
