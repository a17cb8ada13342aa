"""A short workshop lesson (docs/workshop.md) in headless Chromium against a real `streamlit run` with a host
secret: the host unlocks the panel, three participants in their own browser contexts join, move the noise
slider and see ε change, each trains a tiny digits run to completion, one starts a small sweep over σ,
everyone sees everyone's runs on Compare, and one exports the config as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.app_server import streamlit_app
from bench.workshop_lesson import LESSON_RUN, LESSON_SETTINGS
from dpcore.config import DPConfig
from tests.e2e.conftest import (
    EPSILON_JS,
    NO_BROWSER,
    NO_BROWSER_REASON,
    SCREENSHOTS,
    go_to,
    join,
    open_app,
    share_link,
    shown_epsilon,
)

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)
HOST_SECRET = "lesson-test-host-secret-0123"
PARTICIPANTS = ("Ana", "Ben", "Caro")


def test_a_host_and_three_participants_play_the_short_lesson(browser, tmp_path: Path) -> None:
    env = {
        **LESSON_SETTINGS,
        "DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3"),
        "DPEXPLORER_HOST_SECRET": HOST_SECRET,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = tmp_path / "streamlit.log"
    with streamlit_app(env=env, log_path=log) as url:
        contexts = [
            browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            for _ in range(1 + len(PARTICIPANTS))
        ]
        try:
            host, *people = (context.new_page() for context in contexts)
            for page in (host, *people):
                page.set_default_timeout(60_000)

            # The host joins and unlocks the host panel with the server's secret.
            open_app(host, url)
            join(host, "Hilde")
            sidebar = host.locator('[data-testid="stSidebar"]')
            sidebar.locator('[data-testid="stExpander"] summary', has_text="Host").click()
            sidebar.locator('input[type="password"]').fill(HOST_SECRET)
            sidebar.get_by_role("button", name="Unlock").click()
            sidebar.get_by_text("(host)").first.wait_for()
            sidebar.get_by_role("button", name="Cancel every queued or training run").wait_for()

            # Each participant opens the lesson's link, joins, and moves the noise slider to a σ of their own
            # (one, two, three steps up), reading ε fall at each step.
            for steps, (page, name) in enumerate(zip(people, PARTICIPANTS), start=1):
                open_app(page, share_link(url, LESSON_RUN))
                join(page, name)
                for _ in range(steps):
                    before = shown_epsilon(page)
                    page.get_by_role("slider", name="Noise multiplier").focus()
                    page.keyboard.press("ArrowRight")
                    page.wait_for_function(f"(old) => ({EPSILON_JS})() !== old", arg=before)
                    assert float(shown_epsilon(page)) < float(before)  # more noise, smaller ε

            # Each trains a run named after them.
            for page, name in zip(people, PARTICIPANTS):
                go_to(page, "Train")
                page.get_by_label("Run name (optional)").fill(f"{name}'s run")
                page.get_by_role("button", name="Start training").click()
                page.get_by_text(re.compile(r"^Run \d+ queued")).first.wait_for()
            for page in people:
                page.get_by_text("Completed · 1/1 epochs").first.wait_for(timeout=180_000)

            # One starts a small sweep over σ.
            sweeper = people[0]
            go_to(sweeper, "Sweep")
            main = sweeper.locator('[data-testid="stMain"]')
            values = sweeper.get_by_label("Values of Noise multiplier σ (comma-separated)")  # σ is offered first
            values.fill("1, 2")
            values.press("Enter")
            main.get_by_text("Before it starts").wait_for()
            sweeper.get_by_role("button", name="Start sweep").click()
            main.get_by_text(re.compile(r"^Sweep \d+ queued: 2 run")).first.wait_for()

            # Everyone, the host included, sees every participant's runs on Compare.
            for page in (host, *people):
                go_to(page, "Compare")
                chart = page.locator('[data-testid="stMain"] .js-plotly-plot').first
                chart.wait_for()
                drawn = chart.text_content() or ""
                for name in PARTICIPANTS:
                    assert name in drawn, f"{name} missing from the Compare chart: {drawn[:500]}"
            for width, height in ((1280, 800), (390, 844)):  # the projector and a phone
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                host.set_viewport_size({"width": width, "height": height})
                chart = host.locator('[data-testid="stMain"] .js-plotly-plot').first
                chart.evaluate("element => element.scrollIntoView({block: 'center'})")
                host.mouse.move(0, 0)  # no hover label over the chart
                host.wait_for_timeout(1200)  # let plotly redraw at this size
                host.screenshot(path=str(SCREENSHOTS / f"lesson-compare-{width}x{height}.png"))
            host.set_viewport_size({"width": 1280, "height": 800})

            # One exports the config the lesson trained.
            exporter = people[1]
            go_to(exporter, "Export")
            with exporter.expect_download() as info:
                exporter.get_by_role("button", name="Download JSON").click()
            exported = DPConfig.from_json(Path(info.value.path()).read_text(encoding="utf-8"))
            assert (exported.dataset, exported.epochs, exported.max_train_examples) == ("digits", 1, 300)
            assert json.loads(exported.to_json())["noise_multiplier"] > LESSON_RUN.noise_multiplier
        finally:
            for context in contexts:
                context.close()
    assert "Traceback" not in log.read_text()
