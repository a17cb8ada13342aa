"""What belongs to one participant across the store and the upload folder, removed together.

The room knows who people are (``dpcore.room``); their runs live in the store. This is where the two
meet: deleting a person's runs and uploads, or the whole board's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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
