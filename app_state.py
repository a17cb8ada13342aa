"""What the app's pages share, behind one API: the current config, notices, this session's runs, the store.

Pages read and change shared state only through these functions; the session-state keys below are
spelled nowhere else (tests may read them).
"""
from __future__ import annotations

import uuid
from typing import Any, NoReturn, Optional, Sequence

import pandas as pd
import streamlit as st

from dpcore import data, share, sweeps
from dpcore.comparison import AUDIT_AUC_COLUMN, AUDIT_BOUND_COLUMN, RUN_TABLE_FORMATS, run_rows
from dpcore.config import ACCOUNTANT_TITLES, DPConfig
from dpcore.errors import UserInputError
from dpcore.jobs import JobRunner, JobSnapshot, get_runner
from dpcore.store import RunRecord, RunStore, SweepRecord

CONFIG_KEY = "dpx_config"
OWNER_KEY = "dpx_owner"
NOTICE_KEY = "dpx_notice"  # a success message for the next render, e.g. from a button callback
ERROR_KEY = "dpx_error"  # a problem for the next render, e.g. a bad share link
# Explore's widget keys: dropped whenever the config is replaced, so the widgets re-read it.
WIDGET_PREFIX = "w_"
PAGE_PATHS = ("explore", "train", "sweep", "compare", "export", "learn")


class PageDone(Exception):
    """A page has shown all it can (say, after an error message); app.py catches it and goes on."""


def finish_page() -> NoReturn:
    """End the current page early; unlike st.stop(), the shared sidebar is still drawn."""
    raise PageDone


def runner() -> JobRunner:
    """The process-wide job runner (``jobs.get_runner``: one per server, shared by all browser sessions)."""
    return get_runner()


def store() -> RunStore:
    """The run store the runner writes to."""
    return runner().store


def init_session() -> None:
    """Give this browser session an owner id and a config, restoring one from a share link."""
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = uuid.uuid4().hex[:12]
    if CONFIG_KEY not in st.session_state:
        st.session_state[CONFIG_KEY] = DPConfig()
    params = st.query_params.to_dict()
    if share.is_shared(params):
        try:
            set_config(share.decode(params))
            post_notice("Config restored from the share link.")
        except UserInputError as exc:
            post_error(f"The share link holds a bad config: {exc}")
        st.query_params.clear()


def owner() -> str:
    """This browser session's owner id (runs it starts carry it)."""
    return st.session_state[OWNER_KEY]


def config() -> DPConfig:
    """The current config (the one the Explore page's widgets show)."""
    return st.session_state[CONFIG_KEY]


def set_config(new: DPConfig, *, reset_widgets: bool = True) -> None:
    """Replace the current config; Explore's widgets pick it up on their next render.

    ``reset_widgets=False`` is for the config Explore's widgets have just produced themselves.
    """
    st.session_state[CONFIG_KEY] = new
    if reset_widgets:
        for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIDGET_PREFIX)]:
            del st.session_state[key]


def update_config(**changes: Any) -> DPConfig:
    """Change some fields of the current config (validated) and return the new one."""
    new = config().replace(**changes)
    set_config(new)
    return new


def post_notice(text: str) -> None:
    """Say ``text`` once, as a success message and a toast, on the next render of any page."""
    st.session_state[NOTICE_KEY] = text


def post_error(text: str) -> None:
    """Show ``text`` once, as an error, on the next render of any page."""
    st.session_state[ERROR_KEY] = text


def show_notices() -> None:
    """Messages posted by callbacks and link restores, shown once."""
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.toast(notice)
        st.success(notice)
    problem = st.session_state.pop(ERROR_KEY, None)
    if problem:
        st.error(problem)


def my_runs() -> list[JobSnapshot]:
    """This session's runs (queued, training or ended), in submission order."""
    return runner().list_jobs(owner=owner())


def submit_run(cfg: DPConfig, *, name: str = "", audit: bool = False) -> int:
    """Queue ``cfg`` for training as this session's run (``audit``: audit its model when it ends); returns its id."""
    return runner().submit(cfg, owner=owner(), name=name, audit=audit)


def preview_sweep(spec: sweeps.SweepSpec) -> sweeps.SweepPreview:
    """Projected ε of each point of ``spec``, its selection ε and its compute at this server's measured speeds."""
    return sweeps.preview(spec, throughput=runner().throughput)


def start_sweep(spec: sweeps.SweepSpec) -> sweeps.StartedSweep:
    """Queue ``spec`` as one sweep of this session's (refused whole when over the limits)."""
    return sweeps.start(runner(), spec, owner=owner())


def cancel_sweep(sweep_id: int) -> int:
    """Cancel every queued or running run of one of this session's sweeps; return how many."""
    return sweeps.cancel(runner(), sweep_id)


def my_sweeps() -> list[SweepRecord]:
    """This session's sweeps, oldest first."""
    return store().list_sweeps(owner=owner())


def train_size(cfg: DPConfig) -> Optional[int]:
    """n for the accountant, or None (with the error shown) when the dataset cannot say."""
    try:
        return data.train_size(cfg)
    except UserInputError as exc:
        st.error(str(exc))
        return None


def run_table(runs: Sequence[RunRecord], *, key: str) -> None:
    """The sortable table of runs that Train and Compare show (one row per run, from comparison.run_rows)."""
    st.dataframe(
        pd.DataFrame(run_rows(runs)).style.format(RUN_TABLE_FORMATS, na_rep=""), hide_index=True,
        width="stretch", key=key, placeholder="",  # an unknown value is an empty cell, not "None"
        column_config={
            "ε": st.column_config.Column(help="∞ for non-private baselines; empty until the first epoch ends"),
            AUDIT_AUC_COLUMN: st.column_config.Column(help="The best membership-inference attack's ROC AUC "
                                                           "(0.5 is guessing); empty if never audited"),
            AUDIT_BOUND_COLUMN: st.column_config.Column(help="The empirical ε lower bound the attacks prove "
                                                             "(95% confidence); never above ε for a correct run"),
        },
    )


def sidebar() -> None:
    """The shared sidebar: the current config at a glance and this session's running jobs."""
    cfg = config()
    with st.sidebar:
        st.markdown("**Current config**")
        st.caption(
            f"{cfg.dataset} · {cfg.model} · {cfg.optimizer} (lr {cfg.learning_rate:g})  \n"
            f"σ {cfg.noise_multiplier:g} · C {cfg.l2_norm_clip:g} · batch {cfg.batch_size} · "
            f"{cfg.epochs} epochs  \n{ACCOUNTANT_TITLES[cfg.accountant]} accountant · {cfg.sampling} sampling · "
            f"δ {cfg.delta:.0e}"
        )
        active = [j for j in my_runs() if not j.done]
        if active:
            st.caption(f"{len(active)} run(s) of yours queued or training.")
