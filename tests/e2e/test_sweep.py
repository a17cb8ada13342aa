"""End to end in headless Chromium: a small real sweep (2 noise multipliers × 2 seeds) queued from the Sweep
page, followed there to completion without a reload, with its result and its chart."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.selection import composition_epsilon
from tests.e2e.conftest import NO_BROWSER, NO_BROWSER_REASON, SCREENSHOTS, go_to, join, open_app, share_link

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)

TINY = DPConfig(dataset="digits", model="logreg", epochs=1, batch_size=32, max_train_examples=64, learning_rate=0.5)


def _shot(page, name: str, *, width: int, height: int, scroll_to=None) -> None:
    """What a person sees at ``width`` x ``height`` (with ``scroll_to`` in view), as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": height})
    if scroll_to is not None:
        scroll_to.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.wait_for_timeout(1200)  # let plotly finish drawing at this size
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_a_small_sweep_runs_to_completion_and_its_result_appears_without_a_reload(page, app_url: str) -> None:
    open_app(page, share_link(app_url, TINY))
    join(page, "Sia")
    go_to(page, "Sweep")
    main = page.locator('[data-testid="stMain"]')
    values = main.get_by_label("Values of Noise multiplier σ (comma-separated)")
    seeds = main.get_by_label("Seeds per setting")
    seeds.fill("2")
    seeds.press("Enter")
    # 13 values × 2 seeds = 26 runs, over the default 24 runs per sweep: Start is off before it is pressed.
    values.fill(", ".join(f"{0.5 + i / 10:g}" for i in range(13)))
    values.press("Enter")
    warning = main.get_by_text("This sweep does not fit this server's limits").first
    warning.wait_for()
    main.get_by_text(
        "raises runs per sweep to 26 in the Host panel, or with DPEXPLORER_MAX_SWEEP_RUNS at start-up"
    ).first.wait_for()
    assert main.get_by_role("button", name="Start sweep").is_disabled()
    _shot(page, "sweep-refused-1280", width=1280, height=800, scroll_to=warning)
    _shot(page, "sweep-refused-390", width=390, height=844, scroll_to=warning)
    page.set_viewport_size({"width": 1280, "height": 800})
    values.fill("1, 2")
    values.press("Enter")
    main.get_by_text("this one holds 4 run(s)").first.wait_for()
    composed = composition_epsilon([TINY.replace(noise_multiplier=s) for s in (1.0, 1.0, 2.0, 2.0)], n=64)
    main.get_by_text(f"composition ε = {format_epsilon(composed)}").first.wait_for()
    _shot(page, "sweep-preview-1280", width=1280, height=800)
    _shot(page, "sweep-preview-390", width=390, height=844)
    page.set_viewport_size({"width": 1280, "height": 800})

    main.get_by_role("button", name="Start sweep").click()
    # The page is not reloaded or clicked again: the sweep's status refreshes by itself.
    main.get_by_text("4 completed").first.wait_for(timeout=300_000)
    main.get_by_text("Result: final test accuracy, mean ± sd over the seeds of each setting").first.wait_for()
    main.get_by_text(f"ε of releasing only the best run of this sweep: {format_epsilon(composed)}").first.wait_for()
    chart = main.locator(".js-plotly-plot").first
    chart.wait_for()
    assert chart.locator("text", has_text="σ 1").count() >= 1 and chart.locator("text", has_text="σ 2").count() >= 1
    table = main.locator('[data-testid="stTable"]').last
    _shot(page, "sweep-result-1280", width=1280, height=800, scroll_to=main.get_by_text("Your sweeps").first)
    _shot(page, "sweep-result-390", width=390, height=844, scroll_to=table)
    _shot(page, "sweep-chart-390", width=390, height=844, scroll_to=chart)
