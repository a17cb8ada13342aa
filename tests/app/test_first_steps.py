"""AppTest: the first screen (Explore) says what to do first, join then train, until the person has a run."""

from __future__ import annotations

import os

from app_state import OWNER_KEY, first_steps
from dpcore.config import DPConfig
from dpcore.runs.store import RunStore
from tests.app.conftest import join


def _steps(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_a_new_visitor_is_told_to_join_then_train(app) -> None:
    at = app.run()
    assert not at.exception
    text = _steps(at)
    assert "Start here" in text and first_steps.JOIN_STEP in text and first_steps.TRAIN_STEP in text
    assert text.index(first_steps.JOIN_STEP) < text.index(first_steps.TRAIN_STEP)


def test_the_join_step_is_ticked_once_joined_and_the_box_goes_once_they_have_a_run(app) -> None:
    at = app.run()
    join(at, "Ada")
    text = _steps(at)
    assert "✓ Joined as **Ada**." in text and first_steps.JOIN_STEP not in text
    assert first_steps.TRAIN_STEP in text
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    run_id = store.create_run(DPConfig(), owner=at.session_state[OWNER_KEY], name="first")
    try:
        at.run()
        assert not at.exception and "Start here" not in _steps(at)
    finally:
        store.delete_run(run_id)
