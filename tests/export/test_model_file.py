"""export.model_file: a finished run's model.keras loads with plain Keras and scores the run's test accuracy; the
zip carries the config (file name only), the privacy report and a README; a run without kept weights says so."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.export.model_file import model_archive, readme
from dpcore.privacy import explain
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.runs.records import RunRecord
from tests.export_runs import OTHER, OWNER


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_models_keras_file_loads_with_plain_keras_and_gets_the_runs_test_accuracy(export_runs, tmp_path):
    import tensorflow as tf

    store = export_runs.store
    record = store.get_run(export_runs.private)
    made = model_archive(store, record.id, caller=Caller(owner=OWNER))
    assert made.file_name == f"dp-run-{record.id}-model.zip" and made.mime == "application/zip"
    folder = f"dp-run-{record.id}"
    members = _members(made.data)
    assert sorted(members) == sorted(
        f"{folder}/{name}" for name in ("model.keras", "config.json", "privacy-report.md", "README.md")
    )
    path = tmp_path / "model.keras"
    path.write_bytes(members[f"{folder}/model.keras"])
    model = tf.keras.models.load_model(path)
    data = datasets.load(record.config)
    logits = model.predict(data.x_test, verbose=0)
    assert logits.shape == (len(data.y_test), 10)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == data.y_test))
    assert accuracy == pytest.approx(record.test_accuracy, abs=1e-12)

    assert DPConfig.from_json(members[f"{folder}/config.json"].decode()) == record.config
    report = members[f"{folder}/privacy-report.md"].decode()
    assert f"(ε, δ) = ({explain.format_epsilon(record.epsilon)}, 1e-05) after 8 noisy steps" in report
    notes = members[f"{folder}/README.md"].decode()
    assert 'tf.keras.models.load_model("model.keras")' in notes and f"{record.test_accuracy:.4f}" in notes
    assert "(n, 8, 8, 1)" in notes and "divided by 16" in notes


def test_a_run_whose_weights_were_not_kept_says_so(export_runs):
    with pytest.raises(UserInputError) as info:
        model_archive(export_runs.unkept_store, export_runs.private, caller=None)
    assert info.value.field == "run" and f"the weights of run {export_runs.private} were not kept" in str(info.value)


def test_only_a_finished_run_of_the_callers_own_has_a_model_to_export(export_runs):
    store = export_runs.store
    with pytest.raises(NotAllowedError, match="belongs to another participant"):
        model_archive(store, export_runs.private, caller=Caller(owner=OTHER))
    with pytest.raises(UserInputError, match=f"run {export_runs.queued} is queued; only a finished run"):
        model_archive(store, export_runs.queued, caller=Caller(owner=OWNER))
    assert model_archive(store, export_runs.sweep_baselines[0], caller=Caller(owner=OTHER, is_host=True)).data
    assert model_archive(store, export_runs.budget, caller=None).data  # stopped by its budget: finished


def _record(config: DPConfig) -> RunRecord:
    return RunRecord(
        id=7,
        name="",
        owner="",
        created=0.0,
        config=config,
        status="completed",
        error=None,
        epochs=(),
        examples_per_second=None,
        seconds=None,
    )


@pytest.mark.parametrize(
    "model, says",
    [
        ("cnn", "maps them to [-1, 1] itself"),
        ("lenet5", "resizes them to 32x32 itself"),
        ("scatternet_linear", "takes ScatterNet features of shape (n, 7, 7, 81), not images"),
        ("scatternet_cnn", "kymatio's Scattering2D with J = 2 and L = 8"),
    ],
)
def test_the_readme_says_what_preprocessing_the_inputs_need(model, says):
    notes = readme(_record(DPConfig(dataset="fashion_mnist", model=model)), input_shape=(28, 28, 1), class_names=())
    assert says in notes and "8-bit pixels divided by 255" in notes


def test_a_csv_models_readme_describes_the_declared_schema_and_owns_up_to_a_derived_one():
    from tests.export.test_script_export import SAMPLE_SCHEMA

    declared = DPConfig(
        dataset="csv", csv_path="/srv/uploads/p00000000000000a1/loans-0011.csv", csv_label="y", csv_schema=SAMPLE_SCHEMA
    )
    notes = readme(_record(declared), input_shape=(12,), class_names=SAMPLE_SCHEMA.classes)
    assert "shape (n, 12)" in notes and "clipped to its [low, high]" in notes and "one-hot" in notes
    assert "loans-0011.csv" in notes and "/srv/uploads" not in notes
    derived = declared.replace(csv_schema=None, csv_preprocessing_epsilon=1.0)
    notes = readme(_record(derived), input_shape=(12,), class_names=())
    assert "not kept with the run" in notes and "declare a schema" in notes


def test_the_archives_config_names_a_csv_file_by_its_own_name(export_runs, tmp_path):
    """A CSV run's archive: config.json and the README name the file, never the path it was read from."""
    from dpcore.runs.store import RunStore
    from tests.conftest import REPO_ROOT
    from tests.export.test_script_export import SAMPLE_SCHEMA

    config = DPConfig(
        dataset="csv",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_label="decision",
        csv_schema=SAMPLE_SCHEMA,
        model="logreg",
        epochs=1,
        batch_size=16,
    )
    store = RunStore(tmp_path / "runs.sqlite3")
    from dpcore.runs.jobs import JobRunner

    runner = JobRunner(store=store)
    try:
        run_id = runner.submit(config)
        assert runner.wait(timeout=300)
    finally:
        runner.shutdown(wait=True)
    assert store.get_run(run_id).status == "completed", store.get_run(run_id).error
    members = _members(model_archive(store, run_id, caller=None).data)
    text = "\n".join(value.decode() for name, value in members.items() if not name.endswith(".keras"))
    assert str(REPO_ROOT) not in text
    assert json.loads(members[f"dp-run-{run_id}/config.json"])["csv_path"] == "sample.csv"
