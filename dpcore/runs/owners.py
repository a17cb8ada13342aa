"""What belongs to one participant across the store and the upload folder, removed together.

The room knows who people are (``dpcore.room``); their runs live in the store. This is where the two
meet: the host's list of who joined (with their runs queued, training and ended), removing a name with
its queued and training runs, deleting a person's runs and uploads, or the whole board's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dpcore.errors import UserInputError
from dpcore.results import FINAL_STATUSES
from dpcore.room import uploads
from dpcore.room.participants import Caller, check_host, check_may_manage_owner
from dpcore.runs.jobs import CancelReport, JobRunner


@dataclass(frozen=True)
class DeletedReport:
    """What deleting runs and uploads removed: the run ids, how many participants they belonged to, the files."""

    run_ids: tuple[int, ...]
    owners: int
    uploads: int

    def text(self) -> str:
        """One plain sentence, e.g. "Deleted 12 runs of 4 participants and 3 uploaded files"."""
        runs, files = len(self.run_ids), self.uploads
        return (
            f"Deleted {runs} run{'' if runs == 1 else 's'} of {self.owners} participant{'' if self.owners == 1 else 's'}"
            f" and {files} uploaded file{'' if files == 1 else 's'}"
        )


def delete_runs_and_uploads(
    runner: JobRunner, *, by: Optional[Caller], owner: Optional[str], uploads_directory: Optional[Path] = None
) -> DeletedReport:
    """Delete ``owner``'s runs and uploaded files (everyone's when None: clearing the board) and say what went.

    Refused while any of those runs is queued or training (cancel them first), so no run loses its
    data mid-way.
    """
    if owner is None:
        check_host(by, action="clear the board")
    else:
        check_may_manage_owner(by, owner=owner, action="delete")
    owners_of = {run.id: run.owner for run in runner.store.list_runs(owner=owner)}
    deleted = runner.store.delete_runs(owner=owner, by=by)
    runner.forget(deleted)
    files = uploads.delete_uploads(owner=owner, directory=uploads_directory)
    return DeletedReport(
        run_ids=tuple(deleted), owners=len({owners_of[i] for i in deleted if i in owners_of}), uploads=files
    )


@dataclass(frozen=True)
class Person:
    """One participant as the host's list shows them."""

    owner: str
    display_name: str
    joined: float  # Unix seconds
    active_runs: int  # runs and audits queued or training now
    stored_runs: int
    queued: int = 0  # runs waiting in this server's queue
    training: int = 0  # runs training now
    ended: int = 0  # stored runs that have ended (completed, stopped, failed, ...)
    last_seen: Optional[float] = None  # Unix seconds of their last page load on this server, if any


def people(runner: JobRunner, *, last_seen: Optional[Mapping[str, float]] = None) -> list[Person]:
    """Everyone who joined (earliest first), with their runs queued, training and ended, and when a page of
    theirs last loaded (``last_seen``: owner id -> Unix seconds, as this server saw them)."""
    stored: dict[str, int] = {}
    ended: dict[str, int] = {}
    for run in runner.store.list_runs():
        stored[run.owner] = stored.get(run.owner, 0) + 1
        if run.status in FINAL_STATUSES:
            ended[run.owner] = ended.get(run.owner, 0) + 1
    queued: dict[str, int] = {}
    training: dict[str, int] = {}
    for job in runner.list_jobs():
        if job.state == "queued":
            queued[job.owner] = queued.get(job.owner, 0) + 1
        elif job.state == "running":
            training[job.owner] = training.get(job.owner, 0) + 1
    seen = last_seen or {}
    return [
        Person(
            owner=owner,
            display_name=name,
            joined=joined,
            active_runs=runner.active_count(owner),
            stored_runs=stored.get(owner, 0),
            queued=queued.get(owner, 0),
            training=training.get(owner, 0),
            ended=ended.get(owner, 0),
            last_seen=seen.get(owner),
        )
        for owner, name, joined in runner.store.list_participants()
    ]


def remove_participant(
    runner: JobRunner, *, owner: str, by: Optional[Caller], wait_seconds: float = 0.0
) -> CancelReport:
    """Remove a name (the host only): cancel its queued and training runs and waiting audits, and forget
    its token so no session finds it again; its finished runs and uploads stay. Returns what the cancel
    did (``JobRunner.cancel_all``, waiting up to ``wait_seconds`` for its training runs to stop)."""
    check_host(by, action="remove a participant")
    if not isinstance(owner, str) or not owner:
        raise UserInputError("owner", "no participant was chosen", allowed="a name from the list of who joined")
    report = runner.cancel_all(by=by, owner=owner, wait_seconds=wait_seconds)
    runner.store.remove_participant(owner, by=by)
    return report
