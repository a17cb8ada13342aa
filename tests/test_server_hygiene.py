"""A real `streamlit run app.py` answered over HTTP: the favicon every page load asks for, and no traceback in the log."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from bench.app_server import streamlit_app


def test_favicon_and_page_answer_without_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    with streamlit_app(env={"DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3")}, log_path=log) as url:
        for accept in ("identity", "gzip"):  # urllib's default, and what a browser sends
            request = urllib.request.Request(url + "favicon.png", headers={"Accept-Encoding": accept})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/png"
                assert response.read(8) == b"\x89PNG\r\n\x1a\n"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    assert "Traceback" not in log.read_text()
