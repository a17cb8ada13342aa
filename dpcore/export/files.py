"""What the exports share: the file one makes (its name, media type and bytes) and how it names a dataset file.

An export names a CSV file by its own name, never by its path on the server (which would show the
server's folders, and another participant's upload folder to nobody but its owner anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from dpcore.config import DPConfig
from dpcore.room import uploads

# The privacy report's two renderings (``report_text.render_report``), as the CLI's --format names them.
REPORT_FORMATS = ("report-md", "report-html")


@dataclass(frozen=True)
class ExportFile:
    """One file an export makes: the name to save it under, its media type and its bytes."""

    file_name: str
    mime: str
    data: bytes


def file_name(path: str) -> str:
    """A CSV path's file name as its owner knows it: an upload's name as it was uploaded, else the path's last part."""
    return uploads.original_name(path) or PurePath(path).name


def file_name_only(config: DPConfig) -> DPConfig:
    """``config`` with its CSV path cut to the file's own name (``file_name``)."""
    if not config.csv_path:
        return config
    return config.replace(csv_path=file_name(config.csv_path))
