"""A fresh server's first visitor and first run against its second: is the server warm when the room arrives?

Starts a real server on a throwaway run store (``--launcher streamlit``: `streamlit run app.py`;
``serve``: `python serve.py`, which warms the server as it starts) and, ``--visit-after`` seconds
after it answers, one visitor (a light websocket client, bench/load_workshop.py's) opens Explore
(timed until "Projected ε" arrives), joins on Train and starts the default run (timed from the click
until the run has ended, read from the store); then a second visitor does the same. Prints one JSON
line per round: those four times and the first-to-second ratios, which the machine's load hits alike.

    python bench/fresh_server.py [--launcher serve] [--visit-after 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_server import streamlit_server  # noqa: E402
from bench.load_workshop import (  # noqa: E402
    JOIN_LABEL,
    NAME_LABEL,
    START_LABEL,
    Client,
    text_state,
    trigger_state,
)

RUN_TIMEOUT_S = 300.0


def _run_seconds(store_path: Path, count: int) -> float:
    """Wait until the store holds ``count`` ended runs; the seconds waited (the last run's end)."""
    from dpcore.results import FINAL_STATUSES
    from dpcore.runs.store import RunStore

    store = RunStore(store_path)
    start = time.monotonic()
    while time.monotonic() - start < RUN_TIMEOUT_S:
        runs = store.list_runs()
        if len(runs) >= count and all(r.status in FINAL_STATUSES for r in runs):
            if any(r.status != "completed" for r in runs):
                raise SystemExit(f"a run did not complete: {[(r.id, r.status, r.error) for r in runs]}")
            return time.monotonic() - start
        time.sleep(0.1)
    raise SystemExit(f"no run ended within {RUN_TIMEOUT_S:.0f} s")


async def _visit(url: str, name: str, store_path: Path, runs_before: int) -> tuple[float, float]:
    """One visitor: (seconds until Explore showed ε, seconds from 'Start training' until the run ended)."""
    async with Client(url) as client:
        first = await client.rerun(page="")
        if first.errors or first.epsilon_after is None:
            raise SystemExit(f"Explore showed no ε: {first.errors}")
        train_page = client.pages["Train"]
        on_train = await client.rerun(page=train_page)
        joined = await client.rerun(
            page=train_page,
            widgets=(text_state(on_train.widgets[NAME_LABEL], name), trigger_state(on_train.widgets[JOIN_LABEL])),
        )
        clicked = await client.rerun(page=train_page, widgets=(trigger_state(joined.widgets[START_LABEL]),))
        if clicked.errors:
            raise SystemExit(f"the run was not started: {clicked.errors}")
        started = time.monotonic()
        _run_seconds(store_path, runs_before + 1)
        return first.epsilon_after, time.monotonic() - started


def measure(launcher: str, visit_after: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "runs.sqlite3"
        env = {"DPEXPLORER_STORE": str(store_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
        with streamlit_server(env=env, log_path=Path(tmp) / "streamlit.log", warm_start=launcher == "serve") as server:
            time.sleep(visit_after)
            first_eps, first_run = asyncio.run(_visit(server.url, "First", store_path, 0))
            second_eps, second_run = asyncio.run(_visit(server.url, "Second", store_path, 1))
    return {
        "launcher": launcher,
        "visit_after_s": visit_after,
        "first_epsilon_s": round(first_eps, 2),
        "second_epsilon_s": round(second_eps, 2),
        "first_run_s": round(first_run, 2),
        "second_run_s": round(second_run, 2),
        "epsilon_ratio": round(first_eps / second_eps, 2),
        "run_ratio": round(first_run / second_run, 2),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launcher", choices=("streamlit", "serve"), default="serve")
    parser.add_argument(
        "--visit-after", type=float, default=0.0, help="seconds between the server answering and the first visitor"
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores", flush=True)
    for _ in range(args.rounds):
        print(json.dumps(measure(args.launcher, args.visit_after)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
