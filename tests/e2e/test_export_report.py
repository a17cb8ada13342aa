"""End to end in headless Chromium: the Export page makes the privacy report, the browser downloads its HTML page,
and that page draws its charts with the network shut."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dpcore.config import DPConfig
from dpcore.privacy import accounting, explain
from tests.e2e.conftest import NO_BROWSER, NO_BROWSER_REASON, go_to, open_app, screenshot, share_link

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)


def test_privacy_report_downloads_and_opens_without_a_network(page, app_url: str, tmp_path: Path) -> None:
    config = DPConfig(noise_multiplier=1.7, batch_size=100, epochs=3, accountant="pld")
    open_app(page, share_link(app_url, config))
    go_to(page, "Export")
    page.get_by_role("button", name="Make the privacy report").click()
    download_button = page.get_by_role("button", name="Download report (HTML)")
    download_button.wait_for(timeout=180_000)  # the first report loads TensorFlow Privacy in the server
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == "dp-config-privacy-report.html"
    saved = tmp_path / download.suggested_filename
    shutil.copyfile(download.path(), saved)
    text = saved.read_text(encoding="utf-8")
    expected = accounting.epsilon_report_for_config(config, n=1437)
    stated = f"(ε, δ) = ({explain.format_epsilon(expected.epsilon)}, 1e-05) after {expected.steps} noisy steps"
    assert stated in text and "PLD accountant" in text
    screenshot(page, "export-report")

    # Opened from disk with every request but the file itself refused: the charts still draw.
    offline = page.context.new_page()
    refused: list[str] = []

    def only_the_file(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    offline.route("**/*", only_the_file)
    offline.goto(saved.as_uri())
    offline.locator(".js-plotly-plot .main-svg").first.wait_for()
    offline.get_by_text(stated).first.wait_for()
    assert refused == []
    offline.close()
