"""In headless Chromium: Compare for a room of 30 runs by eight participants on two datasets, seeded through
the store (nothing trains), at a projector's 1280x800 and a phone's 390x844.

Screenshots: artifacts/screenshots/compare-room-*.png.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.app_server import streamlit_app
from dpcore.config import DPConfig
from dpcore.results import EpochMetrics
from dpcore.runs.store import RunStore
from tests.audit_samples import hand_made_report
from tests.e2e.conftest import NO_BROWSER, NO_BROWSER_REASON, SCREENSHOTS, go_to, open_app

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)

PEOPLE = ("Ada", "Bo", "Cyra", "Dmitri", "Esi", "Farid", "Gulnara", "Hamish")
FASHION = DPConfig(dataset="fashion_mnist", model="cnn")


def _seed(store: RunStore) -> None:
    """Eight participants: 22 digits runs (two non-private, three audited) and 8 Fashion-MNIST runs whose
    accuracies would top the digits frontier if the two were ever mixed."""
    for i, name in enumerate(PEOPLE):
        store.add_participant(token_hash=f"seeded-{i}", owner=f"owner-{i}", display_name=name)
    for n in range(30):
        owner = f"owner-{n % len(PEOPLE)}"
        if n < 22:
            sigma = 0.6 + 0.15 * n
            config = DPConfig(noise_multiplier=sigma, private=n not in (5, 17))
            final = (2.4 / sigma, 0.55 + 0.25 / sigma) if config.private else (math.inf, 0.97 - n / 1000)
        else:
            config, final = FASHION.replace(noise_multiplier=1.0 + n / 10), (0.1 + (n - 22) / 20, 0.99)
        run_id = store.create_run(config, owner=owner, name=f"{PEOPLE[n % len(PEOPLE)].lower()}-{n}")
        for epoch in (1, 2):
            epsilon = final[0] * epoch / 2 if math.isfinite(final[0]) else math.inf
            store.record_epoch(
                run_id,
                EpochMetrics(
                    epoch=epoch,
                    train_loss=1.0,
                    train_accuracy=final[1],
                    test_loss=1.0,
                    test_accuracy=final[1] - 0.1 * (2 - epoch),
                    epsilon=epsilon,
                    seconds=0.1,
                    examples=100,
                ),
            )
        store.set_status(run_id, "completed")
        if n in (3, 5, 9):
            store.save_audit(run_id, hand_made_report(final[0], auc=0.55, bound=0.2, run_id=run_id).to_json())


@pytest.fixture(scope="module")
def room_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("compare-room")
    _seed(RunStore(tmp / "runs.sqlite3"))
    env = {"DPEXPLORER_STORE": str(tmp / "runs.sqlite3"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with streamlit_app(env=env, log_path=tmp / "streamlit.log") as url:
        yield url


def _shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no hover label over a chart
    page.wait_for_timeout(1200)  # let plotly finish drawing at this size
    path = SCREENSHOTS / f"compare-room-{name}.png"
    page.screenshot(path=str(path))
    return path


def test_a_room_of_30_runs_reads_one_dataset_at_a_time_by_participant(browser, room_url: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_app(page, room_url)
        go_to(page, "Compare")
        main = page.locator('[data-testid="stMain"]')
        # The current config's dataset, with its count.
        expect(page.get_by_role("combobox", name="Dataset")).to_have_value("digits (22 runs)")
        chart = main.locator(".js-plotly-plot").filter(has_text="the class: final test accuracy").first
        chart.wait_for()
        legend = chart.locator(".legend .legendtext").all_text_contents()
        assert set(PEOPLE) <= set(legend) and len(legend) == len(PEOPLE) + 1  # participants and the frontier
        assert not any(text.startswith(("ada-", "bo-")) for text in legend)  # never one entry per run
        # The plot keeps the chart's width: the legend sits below it, not beside it.
        plot = chart.locator(".nsewdrag").first.bounding_box()
        whole = chart.bounding_box()
        assert plot["width"] > 0.8 * whole["width"]
        ticks = chart.locator(".xtick text")
        assert ticks.last.text_content() == "∞ (non-private)"
        assert "rotate" not in (ticks.last.get_attribute("transform") or "")
        board = main.get_by_text("Challenge: best accuracy at ε ≤ 1").first
        board.wait_for()
        chart.scroll_into_view_if_needed()
        _shot(page, "class-1280x800")
        board.scroll_into_view_if_needed()
        _shot(page, "leaderboard-1280x800")

        audits = main.locator(".js-plotly-plot").filter(has_text="attack AUC").first
        audits.scroll_into_view_if_needed()
        for axis in ("xtick", "x2tick"):
            label = audits.locator(f".{axis} text").last
            assert label.text_content() == "∞ (non-private)"
            assert "rotate" not in (label.get_attribute("transform") or "")
        _shot(page, "audit-1280x800")

        page.get_by_text("Each run's epochs").click()
        expect(main.locator(".js-plotly-plot").filter(has_text="the class: final")).to_have_count(0)
        epochs = main.locator(".js-plotly-plot").filter(has_text="test accuracy against ε").first
        epochs.wait_for()
        page.wait_for_timeout(1000)  # let the rerun finish drawing
        assert set(epochs.locator(".legend .legendtext").all_text_contents()) >= set(PEOPLE)
        epochs.scroll_into_view_if_needed()
        _shot(page, "epochs-1280x800")

        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_text("Class view (final points, by participant)").click()
        expect(main.locator(".js-plotly-plot").filter(has_text="the class: final")).to_have_count(1)
        chart = main.locator(".js-plotly-plot").filter(has_text="the class: final test accuracy").first
        chart.wait_for()
        page.wait_for_timeout(1000)
        chart.scroll_into_view_if_needed()
        plot, whole = chart.locator(".nsewdrag").first.bounding_box(), chart.bounding_box()
        assert plot["width"] > 0.6 * whole["width"]  # a phone too: the legend never squeezes the plot
        _shot(page, "class-390x844")
        main.get_by_text("Challenge: best accuracy at ε ≤ 1").first.scroll_into_view_if_needed()
        _shot(page, "leaderboard-390x844")

        page.set_viewport_size({"width": 1280, "height": 800})
        box = page.get_by_role("combobox", name="Dataset")
        box.click()
        box.fill("fashion")
        page.keyboard.press("Enter")
        expect(box).to_have_value("fashion_mnist (8 runs)")
        chart = main.locator(".js-plotly-plot").filter(has_text="the class: final test accuracy").first
        chart.wait_for()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.legendtext')].length === 9"  # all eight are on Fashion too
        )
        main.get_by_text("Every accuracy here is measured on the same 10,000 test rows").first.wait_for()
        chart.scroll_into_view_if_needed()
        _shot(page, "fashion-1280x800")
    finally:
        context.close()
