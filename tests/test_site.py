"""The course's website in a real browser: `bash docs/build.sh` builds `_docs/` from the notebooks' saved outputs,
http.server serves it on 127.0.0.1, and headless Chromium (Playwright) opens every page as a reader would.

The site is built afresh (about half a minute on two cores), so that it is the one the notebooks make now. Skipped
when Chromium or Playwright is missing, unless CAE_COURSE_REQUIRE_BROWSER=1 (CI sets it): see tests/browser.py.
"""
import configparser
import functools
import http.server
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, require_browser

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_docs"
sys.path.insert(0, str(ROOT / "docs"))
from prepare import chapters  # noqa: E402  (the README's chapter table, as the site orders it)

IMAGE_WIDTHS = """async () => Promise.all([...document.images].map(async img => {
    img.loading = "eager";
    try { await img.decode(); } catch (e) {}
    return [img.src, img.naturalWidth]; }))"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    "Serves a folder without a log line for each request."
    def log_message(self, *args): pass


@pytest.fixture(scope="module")
def site() -> str:
    "The site, built now and served on 127.0.0.1 from a thread; yields its root URL."
    require_browser()
    bin_dir = Path(sys.executable).parent  # build.sh's python, pip and jupyter-book: this test's environment
    subprocess.run(["bash", "docs/build.sh"], cwd=ROOT, check=True,
                   env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=SITE))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def errors() -> list[str]:
    "The console errors and uncaught exceptions that the browser meets, as `page URL: message`."
    return []


@pytest.fixture(scope="module")
def page(site, errors):
    "A Chromium page that reports its errors to `errors`."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        yield page
        browser.close()


@pytest.fixture(scope="module")
def visits(site, page) -> dict[str, dict]:
    "Every page of the site, opened once: the natural width of each of its images, and its same-site links."
    found = {}
    for html in sorted(SITE.glob("*.html")):
        page.goto(site + html.name, wait_until="networkidle")
        links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        found[html.name] = {"images": dict(page.evaluate(IMAGE_WIDTHS)),
                            "links": {l.split("#")[0] for l in links if l.startswith(site)}}
    return found


def test_every_chapter_is_a_page_in_the_readme_order(site, page):
    assert chapters()[0] == "index.ipynb"
    assert sorted(chapters()) == sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb"))  # every notebook is a chapter
    page.goto(site + "search.html")  # a page outside the chapters: no link in the menu is the current page's
    menu = page.eval_on_selector_all("nav.bd-links a.reference", "links => links.map(a => a.getAttribute('href'))")
    assert menu == [Path(nb).with_suffix(".html").name for nb in chapters()]


def test_pages_have_no_console_errors(visits, errors):
    assert len(visits) >= len(chapters()) + 2  # the chapters, the search page and the index of names
    assert errors == []


def test_every_image_loads(visits):
    widths = {src: w for v in visits.values() for src, w in v["images"].items()}
    assert len(widths) > 30  # the chapters' figures (each file once) and the playground in use
    assert [src for src, w in widths.items() if w == 0] == []


def test_every_internal_link_resolves(visits):
    links = set().union(*(v["links"] for v in visits.values()))
    status = {url: urllib.request.urlopen(urllib.request.Request(url, method="HEAD")).status for url in links}
    assert {url: s for url, s in status.items() if s != 200} == {}
    assert any(url.endswith("notebooks/03_metrics.ipynb") for url in links)  # the download links are among them


def test_each_chapter_offers_its_notebook_and_colab(site, page):
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    colab = "https://colab.research.google.com/github/{}/blob/{}/nbs/".format(
        cfg["DEFAULT"]["git_url"].removeprefix("https://github.com/"), cfg["DEFAULT"]["branch"])
    for nb in chapters():
        page.goto(site + Path(nb).with_suffix(".html").name)
        assert page.get_by_role("link", name="Download the notebook").get_attribute("href") == f"notebooks/{nb}"
        assert page.get_by_role("link", name="Open in Colab").get_attribute("href") == colab + nb


def test_search_finds_psnr(site, page):
    page.goto(site + "search.html?q=PSNR")
    results = page.locator("ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(h.startswith("03_metrics.html") for h in hrefs), hrefs


def test_landing_page_shows_the_results_table(site, page):
    page.goto(site + "index.html")
    table = page.locator("table", has_text="test PSNR / SSIM")
    assert table.is_visible()
    from cae_course.shipped import pretrained_info, pretrained_names

    beyond = [n for n in pretrained_names() if pretrained_info(n)["provenance"] == "full-scale"]
    assert table.locator("tbody tr").count() == 8 + 2 + len(beyond)  # the paper's eight runs, two classical controls, the rest
    assert all(name in table.inner_text() for name in ("cae-pixel-blur", "wiener", *beyond))


def test_api_cards_and_playground_picture(site, page):
    page.goto(site + "03_metrics.html")
    card = page.locator("section", has=page.locator("h3", has_text="psnr")).first
    assert "cae_course.metrics.psnr" in card.inner_text() and "data_range:float=1.0" in card.inner_text()
    assert "#|" not in page.locator("article").inner_text()
    page.goto(site + "08_playground.html")
    assert page.locator("img[src*='playground']").evaluate("img => img.naturalWidth") >= 900  # docs/playground.png
