"""End to end in headless Chromium: Explore's recipe settings, opened and read on a laptop-sized window."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dpcore.config import DPConfig
from dpcore.privacy import accounting
from pages.explore_recipe import EXPANDER_TITLE
from tests.e2e.conftest import NO_BROWSER, NO_BROWSER_REASON, chart_screenshot, open_app, share_link, shown_epsilon

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)

RECIPE = DPConfig(
    noise_schedule="time",
    noise_decay_rate=0.002,
    noise_floor=0.8,
    adaptive_clipping=True,
    target_unclipped_quantile=0.9,
    clip_learning_rate=0.001,
    clip_update="linear",
    epsilon_budget=4.0,
    validation_fraction=0.2,
)


def test_recipe_settings_show_the_schedule_split_and_budget(page, app_url: str) -> None:
    open_app(page, share_link(app_url, RECIPE))
    n = 1437 - 288  # digits' training rows less the 20% held out for validation
    assert shown_epsilon(page) == f"{accounting.epsilon_for_config(RECIPE, n=n, interactive=True):.3f}"
    page.get_by_text(EXPANDER_TITLE).click()
    expect(page.get_by_role("spinbutton", name="Decay rate r")).to_have_value("0.002")
    expect(page.get_by_role("spinbutton", name="Count noise σ_b")).to_have_value("10.000")
    chart_screenshot(
        page, page.get_by_text("Adaptive clipping", exact=True), "explore-recipe-controls", width=1280, height=800
    )
    schedule = page.locator(".stPlotlyChart").filter(has_text="noise multiplier σ_t at each step")
    expect(schedule).to_be_visible()
    expect(page.get_by_text("Gradient σ")).to_be_visible()
    epochs = accounting.epochs_within_budget(RECIPE, n=n)
    expect(page.get_by_text(f"allows {epochs} of the {RECIPE.epochs} epochs")).to_be_visible()
    chart_screenshot(page, schedule, "explore-recipe-results", width=1280, height=800)
