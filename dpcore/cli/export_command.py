"""``export``: a config file or a stored run as the Export page gives it: JSON, YAML, the standalone TensorFlow
Privacy script or its notebook, the privacy report (Markdown or HTML), or a finished run's model (a zip)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Union

from dpcore.cli import positive_int
from dpcore.config import DPConfig, load_config_file
from dpcore.errors import UserInputError
from dpcore.export.files import REPORT_FORMATS
from dpcore.export.script import EXPORT_FORMATS
from dpcore.safe_io import write_file

CONFIG_FORMATS = EXPORT_FORMATS + ("notebook",)
MODEL_FORMAT = "model"
FORMATS = CONFIG_FORMATS + REPORT_FORMATS + (MODEL_FORMAT,)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a config or a run as JSON, YAML, a script, a notebook, a privacy report or its model",
        description="Render a config file (--config) or a stored run (--run) as the Export page does: a JSON or "
        "YAML config, the standalone TensorFlow Privacy script that takes exactly the steps its ε accounts "
        "for, or that script as a Jupyter notebook; its privacy report as Markdown or a self-contained HTML "
        "page; or (--run only) the trained model as a zip of model.keras, the config, the report and a README.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="a .json, .yaml or .yml DPConfig file")
    source.add_argument("--run", metavar="ID", type=positive_int("--run"), help="a stored run's id")
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="with --run: the run store file, read only (default: $DPEXPLORER_STORE or the user data folder)",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        dest="export_format",
        help=", ".join(FORMATS[:-1]) + " or " + FORMATS[-1],
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write here instead of standard output (required for --format model)"
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    if args.store is not None and args.run is None:
        raise UserInputError("--store", "a store is read only for a run", allowed="--store with --run ID")
    if args.export_format == MODEL_FORMAT and args.run is None:
        raise UserInputError("--format", "model needs a trained run, not a config", allowed="--run ID")
    if args.export_format == MODEL_FORMAT and args.output is None:
        raise UserInputError(
            "--output", "a model is a zip file, not text for the terminal", allowed="--output FILE (e.g. model.zip)"
        )
    content = _content(args)
    if args.output is None:
        sys.stdout.write(content if isinstance(content, str) else content.decode("utf-8"))
        return 0
    write_file(args.output, content.encode("utf-8") if isinstance(content, str) else content, field="--output")
    return 0


def _content(args: argparse.Namespace) -> Union[str, bytes]:
    """What ``args`` asks for: text for every format but the model, whose zip is bytes."""
    fmt = args.export_format
    store = None
    if args.run is not None:
        from dpcore.runs.store import RunStore

        store = RunStore(args.store, read_only=True)
    if fmt == MODEL_FORMAT:
        from dpcore.export.model_file import model_archive

        assert store is not None
        return model_archive(store, args.run, caller=None).data
    if fmt in REPORT_FORMATS:
        from dpcore.export import report, report_text

        made = (
            report.config_report(load_config_file(args.config))
            if store is None
            else report.run_report(store, args.run, caller=None)
        )
        return report_text.render_report(made, report_format=fmt)
    config: DPConfig = load_config_file(args.config) if store is None else store.get_run(args.run).config
    if fmt == "notebook":
        from dpcore.export.notebook import render_notebook

        return render_notebook(config)
    from dpcore.export.script import render_export

    return render_export(config, export_format=fmt)
