"""The playground in a real browser, as a new learner meets it: JupyterLab on 127.0.0.1, headless Chromium driven
by Playwright. It opens the saved notebook, runs it all, plays with the controls and fine-tunes twice.

Skipped when Chromium or Playwright is missing, unless CAE_COURSE_REQUIRE_BROWSER=1 (CI sets it), which turns
the skip into a failure so that CI can never pass without running it (tests/browser.py).
CAE_COURSE_KEEP_SCREENSHOTS=1 copies the screenshots to tests/artifacts/.
"""
import base64
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, require_browser

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path, lfw):
    "JupyterLab serving a temporary copy of the playground notebook (as saved in the repo) and the result it reads; yields its URL."
    require_browser()
    for path in ("nbs/08_playground.ipynb", "results/playground_adaptation.json"):  # the repo's layout: nbs/ reads ../results/
        (tmp_path / path).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "CAE_COURSE_SCALE": "quick", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
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
        yield f"http://127.0.0.1:{port}/lab/tree/nbs/08_playground.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def image_of(img) -> "PIL.Image.Image":
    "The picture an <img> element shows, decoded (widgets show blob: URLs, which only the page can read)."
    from PIL import Image

    data = img.evaluate("""async el => {
        const bytes = new Uint8Array(await (await fetch(el.src)).arrayBuffer());
        let s = ""; for (const b of bytes) s += String.fromCharCode(b);
        return btoa(s); }""")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def row_colours(grid, row: int) -> int:
    "Distinct colours in the faces of one row (0, 1, 2) of the preview, away from its labels and borders."
    w, h = grid.size
    band = grid.crop((w // 4, row * h // 3 + 12, w - 12, (row + 1) * h // 3 - 12))
    return len(band.getcolors(maxcolors=1 << 20))


def metrics_psnr(text: str) -> tuple[int, float, float]:
    "(epoch, reconstruction PSNR, obfuscated input PSNR) from the playground's metrics line (epoch 0: before training)."
    epoch = re.match(r"epoch (\d+)", text)
    psnr, obf = re.search(r"PSNR ([\d.]+) dB, [\d.]+ dB (?:ahead of|behind) the obfuscated input \(([\d.]+) dB\)", text).groups()
    return int(epoch[1]) if epoch else 0, float(psnr), float(obf)


def test_a_learner_runs_the_playground(jupyter_lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shot = lambda name: page.screenshot(path=str(tmp_path / f"{name}.png"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            page.goto(jupyter_lab)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
            play_cell = page.locator(".jp-Notebook-cell", has_text="playground = Playground(").first
            play_cell.scroll_into_view_if_needed()
            # the saved notebook shows a picture of the playground, not a widget's repr
            expect(play_cell.locator(".jp-OutputArea-output img").first).to_be_visible(timeout=30_000)
            assert "VBox(" not in play_cell.inner_text()
            shot("0-saved")

            # Run All, as a learner does; the playground is the last cell, so nothing trains behind it
            page.locator(".jp-Notebook-cell").first.click()
            page.get_by_role("menuitem", name="Run").first.click()
            page.get_by_text("Run All Cells", exact=True).first.click()
            train = page.locator("button.widget-button", has_text="Train").first
            train.wait_for(timeout=600_000)
            train.scroll_into_view_if_needed()
            expect(page.locator(".jp-InputPrompt", has_text="[*]")).to_have_count(0, timeout=30_000)
            grid, curve = page.locator(".widget-image").nth(0), page.locator(".widget-image").nth(1)
            status, metrics = page.locator(".widget-html").nth(0), page.locator(".widget-html").nth(1)
            shot("1-shown")

            # before any training: three rows, the third the shipped model's faces, and a real curve image
            assert curve.evaluate("img => img.complete && img.naturalWidth > 0"), "broken curve image"
            assert row_colours(image_of(grid), 2) > 1000, "no reconstructions by the shipped model before training"
            expect(status).to_contain_text("fine-tune the shipped cae-pixel-pixelate")

            # the sliders answer at once: n redraws the (pixelated) preview within seconds
            src = grid.get_attribute("src")
            slider = page.locator(".widget-slider", has_text="n (pixels)").first
            slider.locator(".noUi-handle").focus()
            t = time.monotonic()
            page.keyboard.press("ArrowRight")
            expect(grid).not_to_have_attribute("src", src, timeout=30_000)
            lag = time.monotonic() - t
            assert lag < 5, f"the preview took {lag:.1f} s to follow the slider"
            src = grid.get_attribute("src")
            page.keyboard.press("ArrowLeft")  # back to the default n = 8
            expect(grid).not_to_have_attribute("src", src, timeout=30_000)

            # the obfuscated row is what the menu says: blocky for pixelation, smooth (many colours) for blur
            menu = page.locator(".widget-dropdown", has_text="obfuscation").locator("select")
            blocky = row_colours(image_of(grid), 1)
            src = grid.get_attribute("src")
            menu.select_option(label="Gaussian blur")
            expect(grid).not_to_have_attribute("src", src, timeout=30_000)
            smooth = row_colours(image_of(grid), 1)
            shot("2-blur-preview")
            assert blocky < 2000 < 8000 < smooth, (blocky, smooth)
            src = grid.get_attribute("src")
            menu.select_option(label="pixelation")
            expect(grid).not_to_have_attribute("src", src, timeout=30_000)

            # n = 12, away from the shipped model's n = 8; Train fine-tunes it there, with faces on show from the start
            src = grid.get_attribute("src")
            slider.locator(".noUi-handle").focus()
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            expect(grid).not_to_have_attribute("src", src, timeout=30_000)
            expect(metrics).to_contain_text("pixelation (n = 12)", timeout=30_000)
            train.click()
            expect(status).to_contain_text("training cae with the pixel loss on pixelation (n = 12)", timeout=120_000)
            assert curve.evaluate("img => img.complete && img.naturalWidth > 0"), "broken curve image"
            assert row_colours(image_of(grid), 2) > 1000
            shot("3-training")
            # ...and the model adapts: 0.5 dB over the shipped model's PSNR at n = 12, and over the input's
            t, shipped, text = time.monotonic(), None, ""
            for _ in range(600):
                text = metrics.inner_text()
                if text.startswith(("before training", "epoch")):
                    epoch, rec, obf = metrics_psnr(text)
                    shipped = rec if epoch == 0 else shipped
                    if epoch and rec >= shipped + 0.5 and rec > obf:
                        break
                time.sleep(0.5)
            print(f"adapted {time.monotonic() - t:.0f} s after Train: {text}")
            epoch, rec, obf = metrics_psnr(text)
            assert epoch and shipped and rec >= shipped + 0.5 and rec > obf, (shipped, text)
            shot("4-adapted")
            page.locator("button.widget-button", has_text="Stop").first.click()
            expect(status).to_contain_text("stopped", timeout=120_000)

            # whole epochs on every axis, at every epoch of the run: ask the kernel, in a new cell at the end
            page.locator(".jp-Notebook-cell").last.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Escape")
            page.keyboard.press("b")
            page.keyboard.press("Enter")
            page.keyboard.type("from cae_course.playground import curve_figure; h = playground.rows(); print('ticks', "
                               "*[t for n in range(1, len(h) + 1) for ax in curve_figure(playground.steps, "
                               "playground.losses, h[:n]).axes for t in ax.get_xticks()])")
            page.keyboard.press("Shift+Enter")
            out = page.locator(".jp-OutputArea-output", has_text="ticks").last
            out.wait_for(timeout=60_000)
            ticks = [float(t) for t in out.inner_text().split()[1:]]
            assert ticks and all(t == int(t) for t in ticks), ticks

            # a second run starts blank, and switching the obfuscation during it switches what it trains
            train.scroll_into_view_if_needed()
            train.click()
            expect(metrics).not_to_contain_text("dB", timeout=5_000)
            expect(status).to_contain_text("on pixelation", timeout=120_000)
            menu.select_option(label="Gaussian blur")
            expect(status).to_contain_text("on Gaussian blur", timeout=120_000)
            shot("5-switched")
            page.locator("button.widget-button", has_text="Stop").first.click()
            expect(status).to_contain_text("stopped", timeout=120_000)
        finally:
            shots = ROOT / "tests" / "artifacts"
            if os.environ.get("CAE_COURSE_KEEP_SCREENSHOTS"):
                shots.mkdir(exist_ok=True)
                for png in tmp_path.glob("*.png"):
                    shutil.copy(png, shots / png.name)
            browser.close()
