"""End to end in headless Chromium against a real `streamlit run app.py`: every page, as a person uses it."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from dpcore.config import DPConfig
from dpcore.privacy import accounting
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import (
    EPSILON_JS,
    NO_BROWSER,
    NO_BROWSER_REASON,
    SCREENSHOTS,
    choose,
    go_to,
    join,
    open_app,
    screenshot,
    share_link,
    shown_epsilon,
)

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)


def test_moving_noise_multiplier_changes_projected_epsilon(page, app_url: str) -> None:
    open_app(page, app_url)
    before = shown_epsilon(page)
    assert before == f"{accounting.epsilon_for_config(DPConfig(), n=1437):.3f}"
    slider = page.get_by_role("slider", name="Noise multiplier")
    for _ in range(4):  # one step at a time, each waiting for the new ε, as a person reading it would
        shown = shown_epsilon(page)
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"(old) => ({EPSILON_JS})() !== old", arg=shown)
    moved = round(DPConfig().noise_multiplier + 4 * 0.05, 3)  # four slider steps of 0.05 from the default
    expect(page.get_by_label("Noise multiplier (exact)")).to_have_value(f"{moved:.3f}")
    expected = accounting.epsilon_for_config(DPConfig(noise_multiplier=moved), n=1437)
    page.wait_for_function(f"(want) => ({EPSILON_JS})() === want", arg=f"{expected:.3f}")
    screenshot(page, "explore")


def test_calibrate_finds_sigma_and_apply_updates_the_whole_page(page, app_url: str) -> None:
    open_app(page, app_url)
    before = shown_epsilon(page)
    target = page.get_by_label("Target ε")
    target.fill("2.000")
    target.press("Enter")
    page.get_by_role("button", name="Calibrate", exact=True).click()
    page.get_by_text("≤ 2 (RDP, poisson)").first.wait_for()
    assert shown_epsilon(page) == before  # calibrating alone changes nothing outside its fragment
    page.get_by_role("button", name=re.compile(r"^Apply σ = ")).click()
    page.get_by_text("Noise multiplier set to").first.wait_for()
    page.wait_for_function(f"(old) => ({EPSILON_JS})() !== old", arg=before)
    assert 1.9 < float(shown_epsilon(page)) <= 2.0


def test_tiny_training_run_completes_with_a_chart(page, app_url: str) -> None:
    tiny = DPConfig(epochs=2, batch_size=32, max_train_examples=300, learning_rate=0.5)
    open_app(page, share_link(app_url, tiny))
    join(page, "Tess")
    go_to(page, "Train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Completed · 2/2 epochs").first.wait_for(timeout=180_000)
    main = page.locator('[data-testid="stMain"]')
    main.locator(".js-plotly-plot").first.wait_for()
    main.get_by_text("test accuracy").first.wait_for()
    expected = accounting.epsilon_for_config(tiny, n=300)
    main.locator('[data-testid="stMetricValue"]', has_text=f"{expected:.3f}").first.wait_for()
    main.get_by_text("Training accuracy (not covered by ε)").first.wait_for()
    screenshot(page, "train")
    page.get_by_role("button", name="Train non-private baseline").click()
    main.get_by_text("ε spent: ∞ (non-private)").first.wait_for(timeout=180_000)
    main.get_by_text("Completed · 2/2 epochs").first.wait_for()
    main.locator('[data-testid="stMetricValue"]', has_text="∞").first.wait_for()
    go_to(page, "Compare")
    main.locator(".js-plotly-plot").first.wait_for()
    main.get_by_text("non-private baseline(s) by").first.wait_for()
    main.locator(".js-plotly-plot").first.get_by_text("∞ (non-private)").wait_for()
    screenshot(page, "compare")


def test_export_json_download_parses(page, app_url: str) -> None:
    config = DPConfig(noise_multiplier=1.7, batch_size=100, epochs=3, accountant="pld")
    open_app(page, share_link(app_url, config))
    go_to(page, "Export")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download JSON").click()
    download = info.value
    assert download.suggested_filename == "dp-config.json"
    with open(download.path(), encoding="utf-8") as handle:
        text = handle.read()
    json.loads(text)
    assert DPConfig.from_json(text) == config
    screenshot(page, "export")


def test_share_link_restores_the_config(page, app_url: str) -> None:
    config = DPConfig(noise_multiplier=2.35, batch_size=128, epochs=20, accountant="pld", sampling="shuffle")
    open_app(page, share_link(app_url, config))
    page.get_by_text("Config restored from the share link.").first.wait_for()
    expect(page.get_by_label("Noise multiplier (exact)")).to_have_value("2.350")
    expect(page.get_by_label("Batch size (exact)")).to_have_value("128")
    expect(page.get_by_label("Epochs (exact)")).to_have_value("20")
    assert page.get_by_role("radio", name="PLD").is_checked()
    assert page.get_by_role("radio", name="shuffle").is_checked()
    expected = accounting.epsilon_for_config(config, n=1437, interactive=True)
    page.wait_for_function(f"(want) => ({EPSILON_JS})() === want", arg=f"{expected:.3f}")
    go_to(page, "Learn")
    page.locator('[data-testid="stMain"] .js-plotly-plot').nth(2).wait_for()
    screenshot(page, "learn")


def test_uploading_a_csv_and_declaring_its_schema_projects_epsilon(page, app_url: str) -> None:
    open_app(page, app_url)
    join(page, "Uma")
    choose(page, "Dataset", "Your CSV file (tabular)")
    page.get_by_text("Upload a CSV file.").first.wait_for()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        str(REPO_ROOT / "assets" / "sample.csv")
    )
    page.get_by_text("Uploaded sample.csv").first.wait_for()
    page.get_by_text("Label column").first.wait_for()
    page.get_by_text("File: sample.csv", exact=True).first.wait_for()  # its own name, never the kept copy's
    # Until the draft schema is filled in, the page names what is missing and projects no ε.
    page.get_by_text("csv_schema.classes: lists 0 values").first.wait_for()
    expect(page.get_by_text("Projected ε")).to_have_count(0)
    page.get_by_role("tab", name="As YAML").click()
    box = page.get_by_role("textbox", name="Schema (YAML or JSON)")
    page.set_viewport_size({"width": 1280, "height": 800})
    box.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENSHOTS / "explore-csv-draft.png"))
    box.fill((REPO_ROOT / "assets" / "sample.schema.yaml").read_text())
    box.press("Control+Enter")
    page.wait_for_function(f"() => ({EPSILON_JS})() !== null")
    page.get_by_text("Declared schema: nothing is learned from the rows").first.wait_for()
    screenshot(page, "explore-csv")
    page.set_viewport_size({"width": 1280, "height": 800})
    box.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENSHOTS / "explore-csv-schema.png"))
    # Deriving it privately instead: the results show where the run's ε goes.
    page.get_by_text("Derive it privately (spends part of ε)").click()
    split = page.get_by_text("Run ε (composed)")
    split.wait_for()
    split.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(800)
    page.screenshot(path=str(SCREENSHOTS / "explore-csv-derived.png"))


def test_the_first_screen_says_join_then_train_and_the_attack_demo_twin_projects_its_subsets_epsilon(
    page, app_url: str
) -> None:
    from dpcore.views import presets

    open_app(page, app_url)
    start = page.locator(".st-key-first_steps")
    expect(start).to_contain_text("Start here")
    expect(start).to_contain_text("1. Join:")
    expect(start).to_contain_text("3. Train:")
    page.get_by_role("button", name="Its private twin (DP-SGD)").click()
    twin = presets.PRIVATE_TWIN_CONFIG
    expected = f"{accounting.epsilon_for_config(twin, n=twin.max_train_examples):.3f}"
    page.wait_for_function(f"(want) => ({EPSILON_JS})() === want", arg=expected)
    join(page, "Ada")
    expect(start).to_contain_text("✓ Joined as Ada.")
    expect(start).not_to_contain_text("1. Join:")
