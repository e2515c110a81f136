"""What the real-browser tests share: Debian's Chromium, driven by Playwright (which never downloads a browser).

A test that needs them calls `require_browser()`: it skips when either is missing, unless
CAE_COURSE_REQUIRE_BROWSER=1 (CI sets it), which turns the skip into a failure so that CI can never pass without them.
"""
import os
import shutil
from pathlib import Path

import pytest

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
