"""What belongs to one participant across the store and the upload folder, removed together.

The room knows who people are (``dpcore.room``); their runs live in the store. This is where the two
meet: the host's list of who joined, removing a name with its queued and training runs, deleting a
person's runs and uploads, or the whole board's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dpcore.errors import UserInputError
from dpcore.room import uploads
from dpcore.room.participants import Caller, check_host, check_may_manage_owner
from dpcore.runs.jobs import JobRunner


def delete_runs_and_uploads(
    runner: JobRunner, *, by: Optional[Caller], owner: Optional[str], uploads_directory: Optional[Path] = None
) -> int:
    """Delete ``owner``'s runs and uploaded files (everyone's when None: clearing the board); returns how many runs.

    Refused while any of those runs is queued or training (cancel them first), so no run loses its
    data mid-way.
    """
    if owner is None:
        check_host(by, action="clear the board")
    else:
        check_may_manage_owner(by, owner=owner, action="delete")
    deleted = runner.store.delete_runs(owner=owner, by=by)
    runner.forget(deleted)
    uploads.delete_uploads(owner=owner, directory=uploads_directory)
    return len(deleted)


@dataclass(frozen=True)
class Person:
    """One participant as the host's list shows them."""

    owner: str
    display_name: str
    joined: float  # Unix seconds
    active_runs: int  # runs and audits queued or training now
    stored_runs: int


def people(runner: JobRunner) -> list[Person]:
    """Everyone who joined (earliest first), with their runs queued or training and their stored runs."""
    stored: dict[str, int] = {}
    for run in runner.store.list_runs():
        stored[run.owner] = stored.get(run.owner, 0) + 1
    return [
        Person(
            owner=owner,
            display_name=name,
            joined=joined,
            active_runs=runner.active_count(owner),
            stored_runs=stored.get(owner, 0),
        )
        for owner, name, joined in runner.store.list_participants()
    ]


def remove_participant(runner: JobRunner, *, owner: str, by: Optional[Caller]) -> int:
    """Remove a name (the host only): cancel its queued and training runs and waiting audits, and forget
    its token so no session finds it again; its finished runs and uploads stay. Returns the runs cancelled."""
    check_host(by, action="remove a participant")
    if not isinstance(owner, str) or not owner:
        raise UserInputError("owner", "no participant was chosen", allowed="a name from the list of who joined")
    cancelled = runner.cancel_all(by=by, owner=owner)
    runner.store.remove_participant(owner, by=by)
    return cancelled
