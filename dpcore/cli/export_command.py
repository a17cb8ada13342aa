"""``export``: a config file as JSON, YAML or the standalone TensorFlow Privacy script, as the Export page gives it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dpcore.config import load_config_file
from dpcore.errors import UserInputError
from dpcore.export.script import EXPORT_FORMATS, render_export


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a config as JSON, YAML or a standalone training script",
        description="Render a config file as the Export page does: a JSON or YAML config, or a "
        "standalone TensorFlow Privacy script that takes exactly the steps its ε accounts for.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="a .json, .yaml or .yml DPConfig file")
    parser.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, dest="export_format", help="json, yaml or script"
    )
    parser.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    text = render_export(load_config_file(args.config), export_format=args.export_format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise UserInputError("--output", f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    return 0
