"""The host's panel on a real server: the role survives a reload, room-wide actions ask first and report what
they did, and a participant is told, in words, that the host cleared the board."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bench.app_server import streamlit_app
from dpcore.config import DPConfig
from dpcore.export import share
from tests.e2e.conftest import NO_BROWSER, NO_BROWSER_REASON, go_to, join, open_app, screenshot

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)
SECRET = "workshop-host-secret-e2e"
# The full digits training set, small batches, many epochs: still training when the host cancels everything.
LONG = DPConfig(epochs=1000, batch_size=8)


def _sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def test_the_host_keeps_the_role_across_a_reload_cancels_with_a_confirmation_and_clears_the_board(
    browser, tmp_path: Path
) -> None:
    env = {
        "DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3"),
        "DPEXPLORER_HOST_SECRET": SECRET,
        "DPEXPLORER_WORKERS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = tmp_path / "streamlit.log"
    with streamlit_app(env=env, log_path=log) as url:
        contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
        try:
            pia, host = (context.new_page() for context in contexts)
            for page in (pia, host):
                page.set_default_timeout(60_000)

            open_app(pia, url + "?" + urlencode(share.encode(LONG)))
            join(pia, "Pia")
            go_to(pia, "Train")
            pia.get_by_role("button", name="Start training").click()
            pia.get_by_text(re.compile(r"^Epoch \d+/1000")).first.wait_for(timeout=180_000)

            open_app(host, url)
            join(host, "Hana")
            panel = _sidebar(host)
            panel.get_by_text("Host", exact=True).click()
            panel.get_by_role("textbox", name="Host secret").fill(SECRET)
            panel.get_by_role("button", name="Unlock").click()
            panel.get_by_text("You are Hana (host).").wait_for()

            host.reload()  # a new session on the same address: still the host
            panel.get_by_text("You are Hana (host).").wait_for()
            panel.get_by_text("The room now").first.wait_for()
            panel.get_by_text("Training 1 · waiting 0").wait_for()
            screenshot(host, "host-panel-room-now")

            panel.get_by_role("button", name="Cancel every queued or training run…").click()
            panel.get_by_text(re.compile(r"^This cancels 0 waiting and stops 1 training")).wait_for()
            assert pia.get_by_text(re.compile(r"^Epoch \d+/1000")).count() >= 1  # nothing cancelled yet
            panel.get_by_role("button", name="Yes, cancel them").click()
            panel.get_by_text(re.compile(r"^Cancelled 0 queued and 1 training run of 1 participant\.$")).wait_for()
            panel.get_by_text("Training 0 · waiting 0").wait_for()

            panel.get_by_role("button", name="Clear the board…").click()
            panel.get_by_text(re.compile(r"^This deletes all 1 stored run of 1 participant")).wait_for()
            panel.get_by_role("button", name="Yes, delete everything").click()
            panel.get_by_text(re.compile(r"^Board cleared at \d\d:\d\d: Deleted 1 run of 1 participant")).wait_for()

            go_to(pia, "Compare")  # her next page says what happened, once
            pia.get_by_text(re.compile(r"^The host cleared the board at \d\d:\d\d: your runs")).wait_for()
            main = pia.locator('[data-testid="stMain"]')
            assert main.get_by_text(re.compile(r"does not exist|No such file|/uploads/")).count() == 0
            go_to(pia, "Train")
            assert pia.get_by_text("The host cleared the board").count() == 0
        finally:
            for context in contexts:
                context.close()
    assert "Traceback" not in log.read_text()
