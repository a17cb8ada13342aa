"""The exported script as a Jupyter notebook: its sections in code cells, a short explanation above each.

The code cells are the script's sections (``script.script_sections``) as they stand in the script, so run
top to bottom the notebook takes exactly the steps it accounts for and prints the same ε as the script;
the last cell runs ``main()``. The notebook is nbformat 4, validated against nbformat's schema, and opens
in Jupyter or Colab. A CSV file is named by its own name (put it beside the notebook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nbformat

from dpcore.config import DATASET_TITLES
from dpcore.export.files import file_name_only
from dpcore.export.script import script_sections
from dpcore.model_specs import model_description

if TYPE_CHECKING:
    from dpcore.config import DPConfig

NOTEBOOK_MIME = "application/x-ipynb+json"
INSTALL = 'pip install "tensorflow==2.15.1" "tensorflow-privacy==0.9.0" "numpy<2" scikit-learn pandas'


def _explanations(config: DPConfig) -> dict[str, str]:
    """The markdown above each section's cell."""
    data = {
        "csv": (
            f"Your CSV file, read from `{config.csv_path}` (put the file beside this notebook), under the "
            "public schema in the settings: numbers clipped to their range and scaled, categories one-hot, "
            "nothing fitted on the rows. A fixed draw (seed 0) of 20% of the rows is the test split."
        ),
        "digits": "scikit-learn's bundled 8x8 digits, split 80/20 with a fixed seed; pixels in [0, 1].",
        "fashion_mnist": (
            "Fashion-MNIST from Debian's dataset files if present, else through Keras's downloader; pixels in [0, 1]."
        ),
        "mnist": "MNIST through Keras's downloader (downloaded once); pixels in [0, 1].",
    }[config.dataset]
    return {
        "settings": (
            "## Settings\n\nThe run's settings as DP Explorer had them, and the imports. You may change them: "
            "the ε printed at the end is always that of the steps the last cell took."
        ),
        "data": f"## Data\n\n{data} Labels are class indices.",
        "model": (
            f"## Model\n\n{model_description(config.model)}: it outputs one logit per class. Below it, the "
            "optimizer that applies each step's update."
        ),
        "dp_step": (
            "## The DP step\n\n`epoch_batches` draws the batches: with Poisson sampling each step keeps every "
            "example independently with probability `BATCH_SIZE / n` (a batch may even be empty), for exactly "
            "the steps the accountant counts. `make_train_step` clips every example's gradient to "
            "`L2_NORM_CLIP`, adds Gaussian noise of standard deviation `NOISE_MULTIPLIER * L2_NORM_CLIP` to "
            "their sum with TensorFlow Privacy's `GaussianSumQuery`, and divides by the expected batch size."
        ),
        "evaluation": (
            "## Evaluation\n\nThe weights evaluated (their moving average when `WEIGHT_AVERAGING_DECAY` is "
            "set: post-processing, no ε) and the accuracy on held-out rows, which ε does not cover."
        ),
        "epsilon": (
            "## ε\n\n`privacy_spent` composes exactly the noisy steps the training took, with `dp_accounting` "
            "(the accountant in `ACCOUNTANT`), into ε at `DELTA`."
        ),
        "run": (
            "## Training\n\n`main()` loads the data, builds the model and takes the steps epoch by epoch, "
            "counting them; then it prints the test accuracy and the ε of the noisy steps it took."
        ),
    }


def build_notebook(config: DPConfig) -> nbformat.NotebookNode:
    """The notebook of ``config``'s script (refused as the script is: a ConfigError naming the setting)."""
    shown = file_name_only(config)
    sections = script_sections(shown)
    explanations = _explanations(shown)
    intro = (
        f"# Differentially private training: {model_description(shown.model)} on {DATASET_TITLES[shown.dataset]}\n\n"
        "Exported from DP Explorer: the same script as its Python export, in cells. Run them from top to "
        f"bottom, in Jupyter or Colab, with TensorFlow 2.15 and TensorFlow Privacy 0.9.0:\n\n    {INSTALL}\n\n"
        "The last cell trains and prints the noisy steps it took next to their ε."
    )
    # Cell ids named after the sections, so the same config always exports the same notebook.
    cells = [nbformat.v4.new_markdown_cell(intro, id="title")]
    for section in sections:
        name = section.name.replace("_", "-")
        cells.append(nbformat.v4.new_markdown_cell(explanations[section.name], id=f"{name}-text"))
        cells.append(nbformat.v4.new_code_cell(section.code.strip("\n"), id=name))
    notebook = nbformat.v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(notebook)
    return notebook


def render_notebook(config: DPConfig) -> str:
    """The notebook of ``config``'s script as ``.ipynb`` text."""
    return nbformat.writes(build_notebook(config))
