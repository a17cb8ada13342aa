"""Explore's CSV schema: declare the features' ranges, categories and classes, or pay ε to derive them privately.

A CSV's preprocessing is either public (a schema a person writes, from a draft that holds only the
column names, or uploads as a JSON/YAML file) or derived from the training rows by a private
mechanism whose ε share is composed into the run's ε. Never fitted on the rows for free.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Callable, NoReturn, Optional

import streamlit as st

import app_state
from app_state import csv_drafts
from dpcore import csv_schema, safe_io
from dpcore.config import MAX_PREPROCESSING_EPSILON, MIN_PREPROCESSING_EPSILON, DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import explain
from dpcore.safe_io import quote

ss = st.session_state
P = app_state.WIDGET_PREFIX
DECLARE, DERIVE = "declare", "derive"
MODE_TITLES = {DECLARE: "Declare it (public, costs no ε)", DERIVE: "Derive it privately (spends part of ε)"}
MODE_KEY, TEXT_KEY, EPSILON_KEY = f"{P}csv_schema_mode", f"{P}csv_schema_text", f"{P}csv_preprocessing_epsilon"
DRAFT_KEY = "explore_schema_draft"  # the draft the text box was last given, to follow a new label column
FORM_KEY = "explore_schema_form"
VIEW_KEY = "explore_schema_view"  # which of the two views (form or YAML) is open
FORM_ERROR_KEY = "explore_schema_form_error"  # why the form's last edit was refused, naming the column
LABEL_KEY = f"{P}csv_label"  # Explore's label-column box, which the form's "label" type moves
UPLOAD_KEY = "explore_schema_upload"
UPLOAD_ERROR_KEY = "explore_schema_upload_error"
DEFAULT_PREPROCESSING_EPSILON = 1.0
# What each row's box takes, shown while it is empty (a numeric row's empty box keeps the placeholder range).
ROW_HINTS = {csv_schema.NUMERIC: "low, high", csv_schema.CATEGORICAL: "a, b, c", csv_schema.LABEL: "classes: a, b"}
MAX_FORM_COLUMNS = 100  # two widgets a row: a wider file is declared as YAML


def load_schema_upload() -> None:
    """Put an uploaded schema file's text into the schema box, where it is checked like typed text."""
    ss.pop(UPLOAD_ERROR_KEY, None)
    try:
        upload = app_state.uploaded_file(UPLOAD_KEY, field="csv_schema")
    except UserInputError as exc:
        ss[UPLOAD_ERROR_KEY] = str(exc)
        return
    if upload is None:
        return
    raw = upload.raw
    if len(raw) > csv_schema.MAX_SCHEMA_BYTES:
        ss[UPLOAD_ERROR_KEY] = (
            f"csv_schema: {upload.name} is too large (allowed: schema files up to "
            f"{csv_schema.MAX_SCHEMA_BYTES // 1024} KiB)"
        )
        return
    try:
        # The box's text is parsed by CsvSchema.from_text, the bounded reader a schema file goes through.
        ss[TEXT_KEY] = safe_io.decode_text(raw, field="csv_schema", name=quote(upload.name))
    except UserInputError as exc:
        ss[UPLOAD_ERROR_KEY] = str(exc)
        return
    ss[MODE_KEY] = DECLARE
    app_state.post_notice(f"Schema loaded from {upload.name}; check it below.")


def reset_to_draft() -> None:
    """Replace the schema box's text with the draft built from the column names."""
    ss[TEXT_KEY] = ss[DRAFT_KEY]
    ss.pop(FORM_ERROR_KEY, None)


def _form_key(form_id: str, index: int, part: str) -> str:
    return f"explore_schema_form_{form_id}_{index}_{part}"


def _seed_value(choice: csv_schema.ColumnChoice) -> str:
    """A row's text box as the draft says: a range as "low, high" (empty for the placeholder), else the values."""
    if choice.role == csv_schema.NUMERIC:
        return (
            "" if choice.is_placeholder else f"{csv_schema.canonical(choice.low)}, {csv_schema.canonical(choice.high)}"
        )
    return ", ".join(choice.values)


def _typed_choice(name: str, role: str, typed: str) -> csv_schema.ColumnChoice:
    """One form row as a ColumnChoice; a range that is not two numbers is refused, naming the column."""
    values = csv_schema.split_values(typed)
    if role != csv_schema.NUMERIC:
        return csv_schema.ColumnChoice(name=name, role=role, values=values)
    if not values:
        return csv_schema.ColumnChoice(name=name, role=role)
    numbers = [csv_schema.parse_number(v) for v in values]
    if len(numbers) != 2 or any(x is None for x in numbers):
        raise UserInputError(
            csv_schema.schema_field(csv_schema.NUMERIC, name),
            f"{quote(typed)} is not a range",
            allowed="low, high (e.g. 29, 77), or empty to keep the [0, 1] placeholder",
        )
    return csv_schema.ColumnChoice(name=name, role=role, low=numbers[0], high=numbers[1])


def apply_form(draft: csv_schema.SchemaDraft, form_id: str) -> None:
    """Write the form's rows into the schema box as YAML (a new label column too); a refused row leaves the
    box as it was and says why, naming the column."""
    ss.pop(FORM_ERROR_KEY, None)
    try:
        for index, choice in enumerate(draft.columns):
            role = app_state.choice(
                ss[_form_key(form_id, index, "role")], csv_schema.ROLES, field=csv_schema.schema_field(choice.name)
            )
            draft = draft.with_column(_typed_choice(choice.name, role, ss[_form_key(form_id, index, "values")]))
        labels = [c.name for c in draft.columns if c.role == csv_schema.LABEL]
        if len(labels) != 1:
            raise UserInputError(
                "csv_label",
                "no column is the label" if not labels else f"{', '.join(labels)} are all marked label",
                allowed="exactly one label column",
            )
    except UserInputError as exc:
        ss[FORM_ERROR_KEY] = str(exc)
        return
    ss[LABEL_KEY] = labels[0]
    ss[TEXT_KEY] = draft.to_text()
    ss[DRAFT_KEY] = csv_schema.draft_schema_text([c.name for c in draft.columns], label=labels[0])


def _column_form(draft: csv_schema.SchemaDraft, *, text: str) -> None:
    """One row per column: its type and its range ("low, high") or its categories or classes ("a, b, c")."""
    form_id = hashlib.sha256(("\0".join([text, *(c.name for c in draft.columns)])).encode()).hexdigest()[:12]
    with st.form(f"explore_schema_form_{form_id}", border=False):
        st.caption(
            "For each column: its type, then a numeric column's range as low, high (what the column can "
            "hold, e.g. 29, 77 for an age), a categorical column's categories or the label's classes as "
            "a, b, c. An empty range keeps the [0, 1] placeholder."
        )
        for index, choice in enumerate(draft.columns):
            name_col, role_col, value_col = st.columns([2, 3, 3], vertical_alignment="center")
            # The header's text as it is: markdown characters in a name are shown, never rendered.
            shown = choice.name if choice.name.isprintable() else quote(choice.name)
            name_col.markdown("**" + re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", shown) + "**")
            role_key, value_key = _form_key(form_id, index, "role"), _form_key(form_id, index, "values")
            app_state.seed_widget(role_key, choice.role)
            app_state.seed_widget(value_key, _seed_value(choice))
            role_col.selectbox(f"Type of {choice.name}", csv_schema.ROLES, key=role_key, label_visibility="collapsed")
            value_col.text_input(
                f"Range or values of {choice.name}",
                key=value_key,
                label_visibility="collapsed",
                placeholder=ROW_HINTS.get(choice.role, ""),
                max_chars=app_state.max_chars(csv_schema.MAX_SCHEMA_BYTES),
            )
        st.form_submit_button(
            "Apply to the schema", type="primary", on_click=apply_form, args=(draft, form_id), key=f"{FORM_KEY}_apply"
        )
    if FORM_ERROR_KEY in ss:
        st.error(f"The form was not applied: {ss[FORM_ERROR_KEY]}")


def render(
    cfg: DPConfig, *, columns: Sequence[str], label: str, stop: Callable[[str], NoReturn]
) -> tuple[Optional[csv_schema.CsvSchema], Optional[float]]:
    """The schema controls; returns (declared schema, None) or (None, preprocessing ε share).

    ``stop`` shows a problem and ends the page (a schema that does not parse, naming the field).
    """
    st.markdown("**Preprocessing schema**")
    st.caption(
        "Numbers are clipped to a range and scaled, text is one-hot over a list of categories, the label "
        "is one of its classes. Fitted on your rows, these would leak them outside ε: declare them, or "
        "derive them privately for part of ε."
    )
    app_state.seed_widget(MODE_KEY, DERIVE if cfg.csv_preprocessing_epsilon is not None else DECLARE)
    mode = st.radio(
        "Schema",
        (DECLARE, DERIVE),
        key=MODE_KEY,
        format_func=MODE_TITLES.get,
        horizontal=True,
        label_visibility="collapsed",
    )
    if mode == DERIVE:
        return None, _derive_controls(cfg)
    return _declare_controls(cfg, columns=columns, label=label, stop=stop), None


def _derive_controls(cfg: DPConfig) -> float:
    """The ε share of the private derivation (checked with the config: a value out of range names the field)."""
    app_state.seed_widget(EPSILON_KEY, cfg.csv_preprocessing_epsilon or DEFAULT_PREPROCESSING_EPSILON)
    share = st.number_input(
        "ε share for preprocessing",
        step=0.1,
        format="%.3g",
        key=EPSILON_KEY,
        help=f"From {MIN_PREPROCESSING_EPSILON:g} to {MAX_PREPROCESSING_EPSILON:g}. The app counts each column's "
        "values with Gaussian noise and keeps only the counts above a threshold, so a value one record "
        "holds is almost never kept. Its ε is composed with training's into the run's ε.",
    )
    st.caption(
        "Classes, categories and ranges come from noisy counts of the training rows. A larger share "
        "keeps rarer values and tighter ranges; the run's ε on the right includes it."
    )
    return float(share)


def _declare_controls(
    cfg: DPConfig, *, columns: Sequence[str], label: str, stop: Callable[[str], NoReturn]
) -> csv_schema.CsvSchema:
    """The schema as a per-column form and as YAML (the same draft, both ways), and a schema file upload.

    The box starts from the person's own text when it is the config's schema (as typed, kept across
    reloads and page switches), else from the config's schema, else from a draft of the column names.
    """
    owner = app_state.owner()
    draft = csv_schema.draft_schema_text(columns, label=label)
    if TEXT_KEY not in ss:
        typed = csv_drafts.schema_text_for(owner, cfg)
        ss[TEXT_KEY] = typed if typed is not None else cfg.csv_schema.to_yaml() if cfg.csv_schema is not None else draft
    if ss[TEXT_KEY] == ss.get(DRAFT_KEY):
        ss[TEXT_KEY] = draft  # an untouched draft follows the label column
    ss[DRAFT_KEY] = draft
    text = ss[TEXT_KEY]
    csv_drafts.keep(owner, schema_text=text)
    try:
        form_draft: Optional[csv_schema.SchemaDraft] = csv_schema.SchemaDraft.from_text(
            text, columns=columns, label=label
        )
        form_problem = ""
    except UserInputError as exc:
        form_draft, form_problem = None, str(exc)
    by_column, as_yaml = st.tabs(["By column", "As YAML"], key=VIEW_KEY)  # the chosen view stays across reruns
    with by_column:
        if form_draft is None:
            st.info(f"The form shows the schema once its YAML reads: {form_problem}")
        elif len(form_draft.columns) > MAX_FORM_COLUMNS:
            st.info(
                f"This file has {len(form_draft.columns)} columns; the form shows up to {MAX_FORM_COLUMNS}. "
                "Declare the schema as YAML."
            )
        else:
            _column_form(form_draft, text=text)
    with as_yaml:
        st.text_area(
            "Schema (YAML or JSON)",
            key=TEXT_KEY,
            max_chars=app_state.max_chars(csv_schema.MAX_SCHEMA_BYTES),
            height=260,
            help="classes: the label's values; numeric: column: [low, high]; categorical: column: "
            "[categories]; scale: unit or symmetric. Columns not listed are not used. Write what "
            'the columns can hold, not what your rows happen to hold. Quote "yes", "no", '
            '"on" and "off": YAML reads them as true and false.',
        )
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        left.file_uploader(
            "Or upload a schema file",
            type=["json", "yaml", "yml"],
            key=UPLOAD_KEY,
            on_change=load_schema_upload,
            max_upload_size=1,
            help=f"A JSON or YAML file as above, up to {csv_schema.MAX_SCHEMA_BYTES // 1024} KiB; it fills the box.",
        )
        right.button(
            "Back to the draft",
            key="explore_schema_draft_reset",
            on_click=reset_to_draft,
            help="Replace the box's text with the draft built from the column names.",
        )
    if UPLOAD_ERROR_KEY in ss:
        stop(ss[UPLOAD_ERROR_KEY])
    if form_draft is not None and form_draft.placeholders:
        st.warning(csv_drafts.placeholder_warning(form_draft.placeholders))
    try:
        return csv_schema.CsvSchema.from_text(text)
    except UserInputError as exc:
        stop(
            f"{exc}. Training waits for a complete schema; the draft's classes and [0, 1] ranges are "
            "placeholders to replace."
        )


def show_split(cfg: DPConfig, *, n: int) -> None:
    """For a CSV run, where its ε goes: nothing to a declared schema, or the private derivation's share
    and training's, composed by dp_accounting into the run's ε."""
    if cfg.dataset != "csv" or not cfg.private:
        return
    if cfg.csv_preprocessing_epsilon is None:
        st.caption("Declared schema: nothing is learned from the rows before training, so all of ε is training's.")
        return
    try:
        split = app_state.epsilon_split(cfg, n=n)
    except UserInputError as exc:
        st.error(str(exc))
        return
    p1, p2, p3 = st.columns(3)
    p1.metric(
        "Preprocessing ε",
        explain.format_epsilon(split.preprocessing),
        help="The private schema derivation alone (noisy, thresholded counts).",
    )
    p2.metric("Training ε", explain.format_epsilon(split.training), help="DP-SGD alone.")
    p3.metric(
        "Run ε (composed)",
        explain.format_epsilon(split.total),
        help="Both mechanisms' events composed by dp_accounting: the run's ε, the projected ε above.",
    )
    st.caption(
        f"Preprocessing {explain.format_epsilon(split.preprocessing)} + training "
        f"{explain.format_epsilon(split.training)} would be "
        f"{explain.format_epsilon(split.preprocessing + split.training)} added up; composing them "
        f"gives the run's ε = {explain.format_epsilon(split.total)}. The thresholds spend "
        f"{split.threshold_delta:.1e} of δ = {split.delta:.1e}."
    )
