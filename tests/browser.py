"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, and the app
served on loopback for it. A browser that cannot start fails the test: it never skips."""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import make_server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 900), (390, 844)


@contextmanager
def served(app):
    """The Flask app on a free loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def chromium():
    """A headless Chromium session; raises with the fix when the browser is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: apt-get install chromium chromium-driver "
                           "(make test does this)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_until(predicate, timeout: float = 15.0, what: str = "the page"):
    """Poll ``predicate`` until it returns something truthy; that value.

    An element the page re-rendered between finding and reading it counts as not there yet.
    """
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there within {timeout}s")
        time.sleep(0.05)


def screenshots(driver, name: str) -> list[Path]:
    """The current page at desktop and phone widths, saved under tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    saved = []
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(width, height)
        time.sleep(0.3)  # let the layout settle at the new width
        path = ARTIFACTS / f"{name}-{label}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    driver.set_window_size(*DESKTOP)
    return saved
