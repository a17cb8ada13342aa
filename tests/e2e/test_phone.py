"""In headless Chromium at a phone's 390×844: the projected ε stays in view beside the sliders as they scroll."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dpcore.config import DPConfig
from tests.conftest import wait_until
from tests.e2e.conftest import EPSILON_JS, NO_BROWSER, NO_BROWSER_REASON, open_app, share_link

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)

PHONE = {"width": 390, "height": 844}
EPSILON_LINE = ".st-key-explore_epsilon_line"


@pytest.fixture()
def phone(browser):
    """A fresh tab the size of a phone's screen."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _in_view(locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["height"] > 0 and 0 <= box["y"] and box["y"] + box["height"] <= PHONE["height"]


def test_epsilon_stays_in_view_while_a_slider_is_in_view(phone, app_url: str) -> None:
    open_app(phone, app_url)
    line = phone.locator(EPSILON_LINE)
    metric_epsilon = phone.evaluate(EPSILON_JS)
    assert line.inner_text().startswith(f"ε = {metric_epsilon} (projected)")
    epochs = phone.get_by_role("slider", name="Epochs")
    # The Epochs slider in the middle of the screen: the ε metric itself is then far below, out of view.
    epochs.evaluate("element => element.scrollIntoView({block: 'center'})")
    phone.wait_for_timeout(500)
    metric = phone.locator('[data-testid="stMetric"]', has_text="Projected ε").first
    assert _in_view(epochs) and not _in_view(metric)
    assert _in_view(line)
    # Moving the slider there updates the line in view.
    epochs.focus()
    phone.keyboard.press("ArrowRight")
    phone.wait_for_function(f"(old) => ({EPSILON_JS})() !== old", arg=metric_epsilon)
    moved = phone.evaluate(EPSILON_JS)
    phone.wait_for_function(
        "([selector, want]) => document.querySelector(selector).innerText.includes(want)",
        arg=[EPSILON_LINE, f"ε = {moved} (projected)"],
    )
    assert _in_view(line) and _in_view(epochs)


def test_the_one_line_epsilon_is_hidden_where_the_metric_stands_beside_the_sliders(page, app_url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    open_app(page, app_url)
    assert not page.locator(EPSILON_LINE).is_visible()
    assert page.get_by_role("slider", name="Noise multiplier").is_visible()


def test_after_start_the_runs_progress_is_in_view(phone, app_url: str) -> None:
    tiny = DPConfig(epochs=2, batch_size=32, max_train_examples=300, learning_rate=0.5)
    phone.goto(share_link(app_url + "train", tiny))  # by its address: a phone's sidebar starts closed
    phone.get_by_role("heading", name="Train", exact=True).wait_for()
    main = phone.locator('[data-testid="stMain"]')
    main.get_by_role("textbox", name="Your name").fill("Pia")
    main.get_by_role("button", name="Join").click()
    start = phone.get_by_role("button", name="Start training")
    start.wait_for()
    start.evaluate("element => element.scrollIntoView({block: 'end'})")  # at the bottom edge, as a thumb finds it
    start.click()
    progress = phone.locator('[class*="st-key-train_progress_"]').first
    progress.wait_for()
    wait_until(lambda: _in_view(progress), what="the new run's progress to scroll into view", timeout=30)
    # One name box before a run: the run's own, and it is empty again after Start.
    expect(phone.get_by_role("textbox", name="Run name (optional)")).to_have_value("")
