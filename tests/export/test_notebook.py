"""export.notebook: the script's sections in valid nbformat cells; run top to bottom it takes the script's steps and prints its ε."""

from __future__ import annotations

import itertools
import json
import re

import nbformat
import pytest

from dpcore.config import DATASETS, OPTIMIZERS, DPConfig
from dpcore.errors import ConfigError
from dpcore.export.notebook import build_notebook, render_notebook
from dpcore.export.script import SCRIPT_SECTIONS, render_script, script_sections
from tests.export.test_script_export import SAMPLE_SCHEMA, SCRIPT_MODELS, TINY_N, _run_instrumented, check_run


def _config(dataset: str, **changes) -> DPConfig:
    extra = (
        dict(csv_path="/srv/dpx/uploads/p0123456789abcdef/survey-0a1b2c3d4e5f6a7b.csv", csv_label="label")
        if dataset == "csv"
        else {}
    )
    return DPConfig(dataset=dataset, **extra, **changes)


@pytest.mark.parametrize("dataset, model, optimizer", list(itertools.product(DATASETS, SCRIPT_MODELS, OPTIMIZERS)))
def test_every_combination_is_a_valid_notebook_of_the_script_in_its_sections(dataset, model, optimizer):
    config = _config(
        dataset, model=model, optimizer=optimizer, **({"csv_schema": SAMPLE_SCHEMA} if dataset == "csv" else {})
    )
    text = render_notebook(config)
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)  # raises on anything outside nbformat's schema
    assert json.loads(text)["nbformat"] == 4
    cells = notebook.cells
    # A title, then a markdown explanation above every code cell.
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    pairs = list(zip(cells[1::2], cells[2::2]))
    assert [(m.cell_type, c.cell_type) for m, c in pairs] == [("markdown", "code")] * len(SCRIPT_SECTIONS)
    assert [m.source.split("\n", 1)[0] for m, _ in pairs] == [
        "## Settings",
        "## Data",
        "## Model",
        "## The DP step",
        "## Evaluation",
        "## ε",
        "## Training",
    ]
    # The code is the script's, section by section (its CSV file named by its own name).
    shown = config.replace(csv_path="survey-0a1b2c3d4e5f6a7b.csv") if dataset == "csv" else config
    assert [c.source for _, c in pairs] == [s.code.strip("\n") for s in script_sections(shown)]
    assert "".join(s.code for s in script_sections(shown)) == render_script(shown)


def test_a_csv_notebook_names_the_file_by_its_own_name_never_the_server_path():
    config = _config("csv", csv_schema=SAMPLE_SCHEMA)
    text = render_notebook(config)
    assert "/srv/dpx" not in text and "p0123456789abcdef" not in text
    assert "CSV_PATH = 'survey-0a1b2c3d4e5f6a7b.csv'" in text
    assert "put the file beside this notebook" in text


def test_what_the_script_refuses_the_notebook_refuses_naming_the_setting():
    with pytest.raises(ConfigError) as info:
        build_notebook(DPConfig(dataset="fashion_mnist", model="scatternet_linear"))
    assert info.value.field == "model"
    with pytest.raises(ConfigError) as info:
        build_notebook(DPConfig(adaptive_clipping=True))
    assert info.value.field == "adaptive_clipping"


def test_notebook_run_top_to_bottom_takes_the_scripts_steps_and_prints_its_epsilon(tmp_path):
    """The script and the notebook of a tiny config per sampling run under tests/script_instrument.py, in
    one subprocess; each takes exactly the accounted steps with the accounted normaliser, and the
    notebook prints the same steps and ε as the script."""
    configs = [
        DPConfig(
            model="logreg",
            epochs=2,
            batch_size=2 if sampling == "poisson" else 10,
            max_train_examples=TINY_N,
            delta=1e-3,
            l2_norm_clip=0.5,
            sampling=sampling,
            accountant=accountant,
        )
        for sampling, accountant in (("poisson", "rdp"), ("shuffle", "pld"))
    ]
    notebooks = []
    for number, config in enumerate(configs):
        notebooks.append(tmp_path / f"run{number}.ipynb")
        notebooks[-1].write_text(render_notebook(config), encoding="utf-8")
    results = _run_instrumented(tmp_path, configs, extra=notebooks)
    privacy = re.compile(r"privacy: epsilon = \S+ at delta = \S+ after \d+ noisy steps.*")
    for config, (script_output, script_steps), (notebook_output, notebook_steps) in zip(
        configs, results[: len(configs)], results[len(configs) :]
    ):
        check_run(config, script_output, script_steps)
        check_run(config, notebook_output, notebook_steps)
        assert privacy.search(notebook_output).group(0) == privacy.search(script_output).group(0)
