"""AppTest: the Compare page charts stored runs, filters, renames, deletes and loads a config into Explore."""

from __future__ import annotations

import json
import math
import os

import pytest

from app_state import CONFIG_KEY, OWNER_KEY
from dpcore.config import DPConfig
from dpcore.results import (
    TRAIN_ACCURACY_KEY,
    TRAIN_ACCURACY_TITLE,
    TRAIN_LOSS_KEY,
    TRAIN_LOSS_TITLE,
    TRAIN_METRICS_LABEL,
    EpochMetrics,
)
from dpcore.runs.store import RunStore
from tests.app.conftest import open_page
from tests.audit_samples import hand_made_report


def _metrics(epoch: int, accuracy: float, epsilon: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=1.0,
        train_accuracy=accuracy,
        test_loss=1.0,
        test_accuracy=accuracy,
        epsilon=epsilon,
        seconds=0.1,
        examples=100,
    )


@pytest.fixture()
def runs() -> dict[str, int]:
    """Three stored runs (two private, one baseline) in the app's store; removed afterwards."""
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    ids = {}
    for name, config, points in [
        ("noisy", DPConfig(noise_multiplier=2.0, batch_size=128), [(1, 0.5, 0.4), (2, 0.6, 0.7)]),
        (
            "fashion",
            DPConfig(dataset="fashion_mnist", model="cnn", noise_multiplier=0.9),
            [(1, 0.7, 0.8), (2, 0.8, 1.2)],
        ),
        ("plain", DPConfig(private=False), [(1, 0.9, math.inf)]),
    ]:
        run_id = store.create_run(config, owner="someone", name=name)
        for epoch, acc, eps in points:
            store.record_epoch(run_id, _metrics(epoch, acc, eps))
        store.set_status(run_id, "completed")
        ids[name] = run_id
    yield ids
    for run_id in ids.values():
        try:
            store.delete_run(run_id)
        except LookupError:
            pass


def _open(app):
    return open_page(app, "compare")


def _trace_names(at) -> list[str]:
    return [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]


def test_chart_table_and_baseline(app, runs) -> None:
    at = _open(app)
    names = _trace_names(at)
    assert "noisy" in names and "fashion" in names and "Pareto frontier" in names
    assert "plain, non-private (ε = ∞): 0.900" in names  # the baseline is named in the legend
    table = at.dataframe[0].value
    assert set(runs.values()) <= set(table["id"])
    assert at.get("download_button")


def test_training_figures_are_titled_as_not_covered_by_epsilon_and_can_be_hidden(app, runs) -> None:
    at = _open(app)
    table = at.dataframe[0].value.set_index("id")
    # The fixture's runs end with training accuracy = their last test accuracy and loss 1.0.
    assert table.loc[runs["noisy"], TRAIN_ACCURACY_TITLE] == 0.6 and table.loc[runs["noisy"], TRAIN_LOSS_TITLE] == 1.0
    assert list(table.columns).index(TRAIN_ACCURACY_TITLE) == list(table.columns).index("test accuracy") + 1
    download = at.get("download_button")[0]
    assert TRAIN_ACCURACY_KEY in download.proto.help and TRAIN_METRICS_LABEL in download.proto.help
    header = RunStore(os.environ["DPEXPLORER_STORE"]).to_csv().splitlines()[0].split(",")
    assert TRAIN_LOSS_KEY in header and TRAIN_ACCURACY_KEY in header
    at.toggle(key="compare_show_train_metrics").set_value(False).run()
    assert not at.exception
    columns = set(at.dataframe[0].value.columns)
    assert "test accuracy" in columns and not {TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE} & columns


def test_audited_runs_are_charted_against_epsilon_and_get_table_columns(app, runs) -> None:
    at = _open(app)
    # Chart only this test's runs: other tests may leave audited runs in the shared store.
    at.multiselect(key="compare_selected").set_value(list(runs.values())).run()
    assert len(at.get("plotly_chart")) == 1 and any("No audited runs" in c.value for c in at.caption)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    store.save_audit(runs["noisy"], hand_made_report(0.7, auc=0.52, bound=0.1, run_id=runs["noisy"]).to_json())
    store.save_audit(runs["plain"], hand_made_report(math.inf, auc=0.61, bound=0.8, run_id=runs["plain"]).to_json())
    at.run()
    assert not at.exception
    audit_chart = json.loads(at.get("plotly_chart")[1].proto.spec)
    points = {t["name"]: t for t in audit_chart["data"] if t.get("mode") == "markers" and t.get("showlegend")}
    assert set(points) == {"noisy", "plain"}
    assert points["noisy"]["x"] == [0.7] and points["noisy"]["y"] == [0.52]
    assert points["plain"]["x"] == [audit_chart["layout"]["xaxis"]["tickvals"][-1]]
    assert audit_chart["layout"]["xaxis"]["ticktext"][-1] == "∞"
    table = at.dataframe[0].value.set_index("id")
    assert (table.loc[runs["noisy"], "attack AUC"], table.loc[runs["noisy"], "audit ε ≥"]) == (0.52, 0.1)
    assert table.loc[runs["plain"], "audit ε ≥"] == 0.8 and math.isnan(table.loc[runs["fashion"], "attack AUC"])


def test_one_chosen_run_shows_its_audit_or_offers_one(app, runs) -> None:
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    store.save_audit(runs["noisy"], hand_made_report(0.7, auc=0.52, bound=0.1, run_id=runs["noisy"]).to_json())
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["noisy"]]).run()
    assert not at.exception
    region = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t.get("name") for t in region["data"]][1:] == ["allowed region", "guessing", "loss threshold"]
    assert "ε = 0.7" in region["layout"]["title"]["text"]
    assert next(m.value for m in at.metric if m.label == "ε lower bound (95%)") == "0.10"
    assert any("within the accounted ε = 0.70" in m.value for m in at.markdown)
    at.multiselect(key="compare_selected").set_value([runs["fashion"]]).run()
    assert at.button(key="compare_run_audit_run").label == "Audit this run"


def test_filter_by_dataset(app, runs) -> None:
    at = _open(app)
    at.selectbox(key="compare_dataset").set_value("fashion_mnist").run()
    assert list(at.dataframe[0].value["id"]) == [runs["fashion"]]
    assert "noisy" not in _trace_names(at)


def test_rename_and_delete_own_runs_after_confirming(app, runs) -> None:
    at = _open(app)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    mine = store.create_run(DPConfig(noise_multiplier=3.0), owner=at.session_state[OWNER_KEY], name="mine")
    store.record_epoch(mine, _metrics(1, 0.5, 0.3))
    store.set_status(mine, "completed")
    at.run()
    at.multiselect(key="compare_selected").set_value([mine]).run()
    assert _trace_names(at)[0] == "mine" and "fashion" not in _trace_names(at)
    at.text_input(key="compare_new_name").set_value("renamed").run()
    at.button(key="compare_rename").click().run()
    assert "renamed" in _trace_names(at)
    assert at.button(key="compare_delete").disabled  # not before the confirmation box is ticked
    at.checkbox(key="compare_confirm_delete").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception
    assert mine not in set(at.dataframe[0].value["id"])


def test_others_runs_cannot_be_renamed_or_deleted(app, runs) -> None:
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["noisy"]]).run()
    keys = {b.key for b in at.button}
    assert "compare_rename" not in keys and "compare_delete" not in keys
    assert any("belong to other participants" in c.value for c in at.caption)
    assert "compare_load" in keys  # loading its config is fine
    assert RunStore(os.environ["DPEXPLORER_STORE"]).get_run(runs["noisy"]).name == "noisy"


def test_mine_and_everyones_views(app, runs) -> None:
    at = _open(app)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    mine = store.create_run(DPConfig(noise_multiplier=3.0), owner=at.session_state[OWNER_KEY], name="mine")
    at.run()
    everyone = at.dataframe[0].value
    assert {mine, *runs.values()} <= set(everyone["id"])
    assert set(everyone[everyone["id"] == mine]["by"]) == {"you"}
    at.radio(key="compare_whose").set_value("mine").run()
    assert list(at.dataframe[0].value["id"]) == [mine]
    store.delete_run(mine)


def test_load_into_explore(app, runs) -> None:
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["fashion"]]).run()
    at.button(key="compare_load").click().run()
    assert not at.exception
    assert at.session_state[CONFIG_KEY] == DPConfig(dataset="fashion_mnist", model="cnn", noise_multiplier=0.9)
    assert at.selectbox(key="w_model").value == "cnn"  # now on Explore, showing the loaded config
    assert at.number_input(key="w_noise_multiplier_exact").value == 0.9
