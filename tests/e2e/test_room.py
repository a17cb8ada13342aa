"""Two participants in two browser contexts on one real server: runs are their owner's, a reload keeps them,
and TensorFlow's start-up lines stay out of the server log."""

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
TINY = DPConfig(epochs=2, batch_size=32, max_train_examples=300, learning_rate=0.5)


def test_two_participants_own_their_runs_and_a_reload_keeps_them(browser, tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    # No TF_CPP_MIN_LOG_LEVEL here: the app sets its own, as a served app started by hand would.
    with streamlit_app(env={"DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3")}, log_path=log) as url:
        contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(2)]
        try:
            ana, ben = (context.new_page() for context in contexts)
            for page in (ana, ben):
                page.set_default_timeout(60_000)

            open_app(ana, url + "?" + urlencode(share.encode(TINY)))
            join(ana, "Ana")
            go_to(ana, "Train")
            ana.get_by_role("button", name="Start training").click()
            ana.get_by_text("Completed · 2/2 epochs").first.wait_for(timeout=180_000)
            run_label = re.compile(r"^1: ")

            open_app(ben, url)
            join(ben, "Ben")
            go_to(ben, "Compare")
            main = ben.locator('[data-testid="stMain"]')
            main.locator('[data-testid="stMultiSelect"]').click()
            ben.get_by_role("option", name=run_label).click()
            main.get_by_text("belong to other participants").first.wait_for()
            assert main.get_by_role("button", name=re.compile("^Delete")).count() == 0
            assert main.get_by_role("button", name="Rename").count() == 0
            screenshot(ben, "room-compare-others-run")

            ana.reload()  # a new session on the same URL, ?me= and all
            ana.get_by_text("You are Ana").first.wait_for()
            go_to(ana, "Train")
            ana_main = ana.locator('[data-testid="stMain"]')
            ana_main.get_by_text("Your runs (Ana)").first.wait_for()
            ana_main.get_by_text("Completed · 2/2 epochs").first.wait_for()
            go_to(ana, "Compare")
            ana_main.locator('[data-testid="stMultiSelect"]').click()
            ana.get_by_role("option", name=run_label).click()
            ana_main.get_by_role("button", name=re.compile("^Delete 1 run")).wait_for()
            screenshot(ana, "room-compare-own-run")
        finally:
            for context in contexts:
                context.close()
    text = log.read_text()
    assert "Traceback" not in text
    assert not re.search(r"cuDNN|cuFFT|cuBLAS|oneDNN|tensorflow/core", text), text[-2000:]
