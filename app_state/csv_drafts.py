"""Each participant's CSV work in progress, kept on the server so that a reload finds it.

A CSV config becomes the current config only once its schema is complete; until then the uploaded
file, the label column and the schema text as typed live here, per owner id (the ``?me=`` token
finds the owner again after a reload), or in the browser session before the person joined. Lost
when the server stops, like the saved configs.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Optional

import streamlit as st

from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.errors import UserInputError

SESSION_KEY = "dpx_csv_draft"  # the draft of a session whose person has not joined yet


@dataclass(frozen=True)
class CsvDraft:
    """A CSV being set up: the kept upload's path, the label column, the schema text as typed, and
    whether Explore was last showing the CSV dataset (so a reload opens it again)."""

    csv_path: str = ""
    label: str = ""
    schema_text: str = ""
    active: bool = False


_DRAFTS: dict[str, CsvDraft] = {}
_LOCK = threading.Lock()


def kept(owner: str) -> CsvDraft:
    """The draft of ``owner`` (this session's, before they joined: ``owner`` "")."""
    if not owner:
        return st.session_state.get(SESSION_KEY, CsvDraft())
    with _LOCK:
        held = _DRAFTS.get(owner)
    return held if held is not None else st.session_state.get(SESSION_KEY, CsvDraft())


def keep(owner: str, **changes: Any) -> CsvDraft:
    """Change some fields of ``owner``'s draft and keep it (in this session too, for the time before joining)."""
    new = dataclasses.replace(kept(owner), **changes)
    st.session_state[SESSION_KEY] = new
    if owner:
        with _LOCK:
            _DRAFTS[owner] = new
    return new


def schema_text_for(owner: str, cfg: DPConfig) -> Optional[str]:
    """The schema text as ``owner`` typed it, if it is the text of ``cfg``'s schema (or ``cfg`` has none yet);
    None when ``cfg``'s schema came from elsewhere (a link, a preset, a run), which Explore then renders."""
    text = kept(owner).schema_text
    if not text:
        return None
    if cfg.csv_schema is None:
        return text
    try:
        return text if csv_schema.CsvSchema.from_text(text) == cfg.csv_schema else None
    except UserInputError:
        return None


def placeholder_columns(owner: str, cfg: DPConfig) -> tuple[str, ...]:
    """The numeric columns of ``cfg``'s declared schema still at the draft's [0, 1] placeholder, as typed
    by ``owner`` (none when the schema did not come from their text)."""
    if cfg.dataset != "csv" or cfg.csv_schema is None or not cfg.csv_label:
        return ()
    text = schema_text_for(owner, cfg)
    if text is None:
        return ()
    try:
        draft = csv_schema.SchemaDraft.from_text(text, columns=cfg.csv_schema.columns, label=cfg.csv_label)
    except UserInputError:
        return ()
    return draft.placeholders


def placeholder_warning(columns: tuple[str, ...]) -> str:
    """What training on placeholder ranges does, naming the columns still at one."""
    return (
        f"Still at the draft's placeholder range [0, 1]: {', '.join(columns)}. A value outside a column's "
        "range is clipped to it, so an age of 63 trains as 1. Type each column's real range (what it "
        "can hold, not what your rows hold); delete a line's “# placeholder” note to keep [0, 1]."
    )
