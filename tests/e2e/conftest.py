"""Fixtures and helpers for the browser tests: a real `streamlit run` server and headless Chromium."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.app_server import CHROMIUM, CHROMIUM_ARGS, EPSILON_JS, streamlit_app  # noqa: E402

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
NO_BROWSER = not os.path.exists(CHROMIUM)
NO_BROWSER_REASON = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"



@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real app server with its own throwaway run store."""
    tmp = tmp_path_factory.mktemp("e2e")
    env = {"DPEXPLORER_STORE": str(tmp / "runs.sqlite3"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with streamlit_app(env=env, log_path=tmp / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by the playwright package."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, tmp_path: Path):
    """A fresh browser tab (its own Streamlit session) that accepts downloads."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the page as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1500})  # the app scrolls inside; show more of it
    page.wait_for_timeout(1200)  # let plotly finish drawing at the new size
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
