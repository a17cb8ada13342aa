"""AppTest: the Train page launches tiny runs in the background, shows progress, cancels, and reports failures."""
from __future__ import annotations

import json
import random
from pathlib import Path

from dpcore import accounting
from dpcore.config import DPConfig
from dpcore.jobs import get_runner
from app_state import CONFIG_KEY, OWNER_KEY
from tests.app.conftest import open_page


TINY = DPConfig(epochs=2, batch_size=32, max_train_examples=200, learning_rate=0.5, noise_multiplier=1.1)
LONG = DPConfig(epochs=500, batch_size=32)


def _open_train(app, config: DPConfig):
    return open_page(app, "train", config)


def _start(at, key: str = "train_start") -> int:
    at.button(key=key).click().run()
    assert not at.exception
    return at.session_state["train_selected"]


def _progress_text(at) -> str:
    return at.get("progress")[0].proto.text


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_renders_with_buttons_and_no_runs(app) -> None:
    at = _open_train(app, TINY)
    labels = [b.label for b in at.button]
    assert "Start training" in labels and "Train non-private baseline" in labels
    assert any("No runs yet" in i.value for i in at.info)
    assert "σ 1.1" in at.markdown[0].value
    projected = accounting.epsilon_for_config(TINY, n=200)
    assert any(c.value.startswith(f"Projected ε = {projected:.3f} on n = 200") for c in at.caption)
    assert any("Reproducible mode" in c.value and "secure mode" in c.value for c in at.caption)


def test_tiny_run_completes_with_charts_and_epsilon(app) -> None:
    at = _open_train(app, TINY)
    job_id = _start(at)
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert not at.exception
    assert _progress_text(at).startswith("Completed")
    expected = accounting.epsilon_for_config(TINY, n=200)
    assert _metric(at, "ε spent") == f"{expected:.3f}"
    assert _metric(at, "Epoch") == "2/2"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [len(trace["x"]) for trace in chart["data"]] == [2, 2]


def test_baseline_is_labelled_non_private(app) -> None:
    at = _open_train(app, TINY)
    job_id = _start(at, "train_baseline")
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert _metric(at, "ε spent") == "∞"
    assert "non-private" in at.selectbox(key="train_selected").format_func(job_id)
    assert get_runner().get(job_id).config == TINY.as_baseline()


def test_cancel_stops_a_run(app) -> None:
    at = _open_train(app, LONG)
    job_id = _start(at)
    at.button(key=f"cancel_{job_id}").click().run()
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert get_runner().get(job_id).state == "cancelled"
    assert any("was cancelled" in w.value for w in at.warning)


def test_failed_run_shows_its_error(app, tmp_path: Path) -> None:
    rng = random.Random(0)
    csv = tmp_path / "people.csv"
    csv.write_text("x1,x2,y\n" + "".join(f"{rng.random():.3f},{rng.random():.3f},{i % 2}\n" for i in range(60)))
    at = _open_train(app, LONG)
    blocker = _start(at)  # keeps the single worker busy so the next run waits in the queue
    at.session_state[CONFIG_KEY] = DPConfig(dataset="csv", csv_path=str(csv), csv_label="y", batch_size=8,
                                              epochs=1)
    at.run()
    doomed = _start(at)
    csv.unlink()  # the file disappears before the queued run loads it
    get_runner().cancel(blocker)
    assert get_runner().wait([blocker, doomed], timeout=300)
    at.run()
    assert get_runner().get(doomed).state == "failed"
    assert any(f"Run {doomed} failed" in e.value and "does not exist" in e.value for e in at.error)


def test_user_mistake_is_a_message_naming_the_field(app) -> None:
    at = _open_train(app, DPConfig(batch_size=5000))
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(e.value.startswith("batch_size:") for e in at.error)


def test_model_that_does_not_fit_the_dataset_is_refused(app) -> None:
    # Straight to Train, as after uploading a file (Explore would offer only models that fit).
    at = app.run()
    at.session_state[CONFIG_KEY] = DPConfig(dataset="digits", model="cnn")
    at.switch_page("pages/train.py").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(e.value.startswith("model:") for e in at.error)
    assert get_runner().list_jobs(owner=at.session_state[OWNER_KEY]) == []
