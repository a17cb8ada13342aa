"""What belongs to one participant: the host's list of who joined, and removing a name with its active runs."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.room import participants, uploads
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import RunLimits
from dpcore.runs import owners
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore
from tests.conftest import wait_until

LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)
HOST = Caller(owner="p" + "f" * 16, is_host=True)


@pytest.mark.timeout(180)
def test_the_host_lists_who_joined_and_removes_a_name_with_its_queued_and_training_runs(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ada, ada_token = participants.register(store, "Ada")
    bob, _ = participants.register(store, "Bob")
    runner = JobRunner(store=store, workers=1, limits=RunLimits(max_example_passes=None, max_run_seconds=None))
    try:
        adas = [runner.submit(LONG, owner=ada.owner) for _ in range(3)]  # one trains, two wait
        wait_until(lambda: runner.get(adas[0]).state == "running", what="Ada's first run to start")
        bobs = runner.submit(LONG, owner=bob.owner)
        listed = owners.people(runner)
        assert [(p.display_name, p.active_runs, p.stored_runs) for p in listed] == [("Ada", 3, 3), ("Bob", 1, 1)]
        assert listed[0].joined <= listed[1].joined
        with pytest.raises(NotAllowedError, match="only the host can remove a participant"):
            owners.remove_participant(runner, owner=ada.owner, by=Caller(owner=bob.owner))
        with pytest.raises(UserInputError, match="no participant was chosen"):
            owners.remove_participant(runner, owner="", by=HOST)  # never "everyone's"
        assert runner.get(bobs).state in ("queued", "running")
        report = owners.remove_participant(runner, owner=ada.owner, by=HOST, wait_seconds=120)
        assert (report.queued, report.stopped, report.owners) == (tuple(adas[1:]), (adas[0],), 1)
        assert report.text() == "Cancelled 2 queued and 1 training runs of 1 participant"
        assert {runner.get(i).state for i in adas} == {"cancelled"}
        assert runner.get(bobs).state in ("queued", "running")  # Bob is not held back or touched
        assert participants.find(store, ada_token) is None  # a reload finds no one
        assert [p.display_name for p in owners.people(runner)] == ["Bob"]
        assert {r.owner for r in store.list_runs()} == {ada.owner, bob.owner}  # finished runs stay
        assert store.remove_participant(ada.owner, by=HOST) is False  # already gone
    finally:
        runner.shutdown(wait=True)


def test_clearing_the_board_reports_the_runs_their_participants_and_the_files(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ada, _ = participants.register(store, "Ada")
    bob, _ = participants.register(store, "Bob")
    for owner in (ada.owner, ada.owner, bob.owner):
        store.set_status(store.create_run(LONG, owner=owner), "completed")
    folder = tmp_path / "uploads"
    uploads.save_csv(b"x,y\n1,0\n2,1\n", name="mine.csv", owner=ada.owner, directory=folder)
    runner = JobRunner(store=store, workers=1)
    try:
        with pytest.raises(NotAllowedError, match="only the host can clear the board"):
            owners.delete_runs_and_uploads(runner, by=Caller(owner=ada.owner), owner=None, uploads_directory=folder)
        report = owners.delete_runs_and_uploads(runner, by=HOST, owner=None, uploads_directory=folder)
        assert (len(report.run_ids), report.owners, report.uploads) == (3, 2, 1)
        assert report.text() == "Deleted 3 runs of 2 participants and 1 uploaded file"
        assert store.list_runs() == []
    finally:
        runner.shutdown(wait=True)
