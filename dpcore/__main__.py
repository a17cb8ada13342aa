"""Entry point for ``python -m dpcore``."""

from dpcore.cli import main

raise SystemExit(main())
