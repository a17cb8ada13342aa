"""Fixtures and helpers for the browser tests: a real `streamlit run` server and headless Chromium."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.app_server import CHROMIUM, CHROMIUM_ARGS, EPSILON_JS, streamlit_app  # noqa: E402
from dpcore.config import DPConfig  # noqa: E402
from dpcore.export import share  # noqa: E402

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


def chart_screenshot(page, chart, name: str, *, width: int = 1400, height: int = 900) -> Path:
    """Save what a person sees at ``width`` x ``height`` with ``chart`` (a locator) scrolled to the middle of the
    window, as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": height})
    chart.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.mouse.move(0, 0)  # no hover label or mode bar over the chart
    page.wait_for_timeout(1200)  # let plotly finish drawing at this size
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_app(page, url: str) -> None:
    """Open the app (Explore) and wait until it shows a projected ε."""
    page.goto(url)
    page.get_by_text("Projected ε").first.wait_for()
    page.wait_for_function(f"() => ({EPSILON_JS})() !== null")


def shown_epsilon(page) -> str:
    """The "Projected ε" metric as shown."""
    return page.evaluate(EPSILON_JS)


def go_to(page, title: str) -> None:
    """Open a page from the sidebar, clicking again if a rerun swallowed the click.

    When the last run ends, the Train page reruns itself to stop polling; a click that lands in
    that moment can be overtaken by the rerun, and a person would simply click again.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    heading = page.get_by_role("heading", name=title, exact=True)
    for _ in range(3):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        try:
            heading.wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            continue
    heading.wait_for()


def share_link(url: str, config: DPConfig) -> str:
    """The app's URL with ``config`` in its query parameters, as the share link writes it."""
    return url + "?" + urlencode(share.encode(config))


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select box ``label``: scrolled into view first (its list closes when the page
    scrolls under it), and opened again if a rerun closed it, as a person would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name=label, exact=True)
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(4):
        box.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box.click()
        try:
            choice.click(timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    expect(box).to_have_value(option)


def join(page, name: str) -> None:
    """Type a display name into the sidebar and press Join, as each participant does once."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("textbox", name="Your name").fill(name)
    sidebar.get_by_role("button", name="Join").click()
    sidebar.get_by_text(f"You are {name}").first.wait_for()
    page.wait_for_url("**me=*")
