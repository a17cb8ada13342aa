"""Start and stop a real `streamlit run app.py` on a free localhost port, for browser tests and benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    """A started `streamlit run app.py`: its URL and its process id (for memory readings)."""

    url: str
    pid: int


@contextmanager
def streamlit_app(
    *, env: Optional[Mapping[str, str]] = None, log_path: Optional[Path] = None, startup_timeout: float = 90.0
) -> Iterator[str]:
    """Run the app as `streamlit run app.py` would; yields its URL and stops it afterwards."""
    with streamlit_server(env=env, log_path=log_path, startup_timeout=startup_timeout) as server:
        yield server.url


@contextmanager
def streamlit_server(
    *,
    env: Optional[Mapping[str, str]] = None,
    log_path: Optional[Path] = None,
    startup_timeout: float = 90.0,
    warm_start: bool = False,
) -> Iterator[RunningServer]:
    """Like ``streamlit_app``, yielding the URL and the server's process id; ``warm_start`` starts it with
    `python serve.py` (which warms the server as it starts) instead of `streamlit run app.py`."""
    port = free_port()
    launch = [str(REPO_ROOT / "serve.py")] if warm_start else ["-m", "streamlit", "run", str(REPO_ROOT / "app.py")]
    command = [
        sys.executable,
        *launch,
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {process.returncode} (log: {log_path})")
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url} within {startup_timeout:.0f} s")
            time.sleep(0.3)
        yield RunningServer(url=url, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not subprocess.DEVNULL:
            log.close()


# The JavaScript that reads the "Projected ε" metric's value.
EPSILON_JS = """() => {
  for (const metric of document.querySelectorAll('[data-testid="stMetric"]')) {
    if (metric.innerText.includes('Projected ε')) {
      return metric.querySelector('[data-testid="stMetricValue"]').innerText;
    }
  }
  return null;
}"""
