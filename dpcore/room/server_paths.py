"""Which files on the server a person may name: their own uploads, and files under the data folder.

On a shared server a path typed into a box, carried by a share link or written in an imported
config must not read the server's other files. ``check_server_path`` is the one rule the app
applies to every config before it uses its ``csv_path``: an upload only for its owner (or the
host), anything else only under ``ServerSettings.data_dir`` after resolving links and ``..``; with
no data folder configured (the default) server files are off entirely. The refusal does not depend
on whether the file exists, so it tells nothing about files outside the data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from dpcore.errors import UserInputError
from dpcore.room import uploads
from dpcore.room.participants import NotAllowedError
from dpcore.room.server_settings import ENV_DATA_DIR

if TYPE_CHECKING:
    from dpcore.config import DPConfig
    from dpcore.room.participants import Caller
    from dpcore.room.server_settings import ServerSettings


def server_files_enabled(settings: ServerSettings) -> bool:
    """Whether people may name files on the server at all (a data folder is configured)."""
    return settings.data_dir is not None


def resolve_data_file(path: str, settings: ServerSettings) -> Path:
    """``path`` resolved (a relative one against the data folder), accepted only inside the data folder."""
    _check_text(path)
    if settings.data_dir is None:
        raise UserInputError(
            "csv_path",
            "this server does not read files named by path",
            allowed=f"upload the file instead (the host can set {ENV_DATA_DIR} to allow a data folder)",
        )
    base = settings.data_dir.resolve()
    candidate = Path(path).expanduser()
    try:
        resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    except (OSError, RuntimeError):  # a link loop, or a path the system cannot resolve
        raise UserInputError("csv_path", f"{path[:200]!r} cannot be resolved", allowed=f"files under {base}") from None
    if resolved != base and base not in resolved.parents:
        raise UserInputError("csv_path", f"{path[:200]!r} is outside the data folder", allowed=f"files under {base}")
    return resolved


def check_server_path(
    config: DPConfig,
    settings: ServerSettings,
    *,
    caller: Optional[Caller],
    uploads_directory: Optional[Path] = None,
) -> DPConfig:
    """``config`` with its ``csv_path`` resolved, or a UserInputError naming csv_path if ``caller`` may not read it.

    Call it on every config the app is about to use: the text box, a share link, an imported or
    restored config, and before submitting a run.
    """
    if config.csv_path is None:
        return config
    return config.replace(
        csv_path=check_csv_path(config.csv_path, settings, caller=caller, uploads_directory=uploads_directory)
    )


def check_csv_path(
    path: str, settings: ServerSettings, *, caller: Optional[Caller], uploads_directory: Optional[Path] = None
) -> str:
    """``path`` resolved, or a UserInputError naming csv_path if ``caller`` may not read it (the rule of ``check_server_path``).

    For a path on its own, before it is part of a config (the "CSV file on the server" box).
    """
    _check_text(path)
    if uploads.upload_owner(path, directory=uploads_directory) is not None:
        if not uploads.may_use(path, caller, directory=uploads_directory):
            raise NotAllowedError(
                "csv_path",
                "that file was uploaded by another participant",
                allowed="your own uploads, or files under the data folder",
            )
        return str(Path(path).resolve())
    return str(resolve_data_file(path, settings))


def _check_text(path: object) -> None:
    if not isinstance(path, str) or not path.strip():
        raise UserInputError("csv_path", "no file path given", allowed="a file path")
    if "\x00" in path:
        raise UserInputError("csv_path", "the path holds a NUL byte, which no file path can", allowed="a file path")
