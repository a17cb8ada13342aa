"""The host's view of the room: who joined with their runs queued, training and ended, what is active, the load."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig
from dpcore.room import participants
from dpcore.room.participants import Caller
from dpcore.room.server_settings import RunLimits
from dpcore.runs.jobs import JobRunner
from dpcore.runs.room_status import room_status, server_load
from dpcore.runs.store import RunStore
from tests.conftest import wait_until

LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)
HOST = Caller(owner="p" + "f" * 16, is_host=True)


@pytest.mark.timeout(180)
def test_the_room_status_lists_people_their_runs_what_is_active_and_the_load(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ada, _ = participants.register(store, "Ada")
    bob, _ = participants.register(store, "Bob")
    ended = store.create_run(LONG, owner=bob.owner)
    store.set_status(ended, "completed")
    runner = JobRunner(store=store, workers=1, limits=RunLimits(max_example_passes=None, max_run_seconds=None))
    try:
        training = runner.submit(LONG, owner=ada.owner, name="long one")
        wait_until(lambda: runner.get(training).state == "running", what="Ada's run to start")
        waiting = runner.submit(LONG, owner=bob.owner)
        status = room_status(runner, last_seen={ada.owner: 1234.0})
        assert [(p.display_name, p.queued, p.training, p.ended, p.last_seen) for p in status.people] == [
            ("Ada", 0, 1, 0, 1234.0),
            ("Bob", 1, 0, 1, None),
        ]
        assert [(r.id, r.owner_name, r.state, r.kind, r.name) for r in status.active] == [
            (training, "Ada", "running", "train", "long one"),
            (waiting, "Bob", "queued", "train", ""),
        ]
        assert status.active[0].since == runner.get(training).started
        assert status.active[1].since == runner.get(waiting).submitted
        assert (status.load.workers_busy, status.load.workers_total) == (1, 1)
        runner.cancel_all(by=HOST, wait_seconds=60)
        assert room_status(runner).active == ()
    finally:
        runner.shutdown(wait=True)


def test_the_server_load_reads_the_machine(tmp_path):
    load = server_load(tmp_path / "runs.sqlite3", workers_busy=0, workers_total=2)
    assert load.load_1m is not None and load.load_1m >= 0 and load.cpus >= 1
    assert load.memory_total_bytes and 0 < load.memory_available_bytes <= load.memory_total_bytes
    assert load.disk_total_bytes and 0 < load.disk_free_bytes <= load.disk_total_bytes
    assert (load.workers_busy, load.workers_total) == (0, 2)
