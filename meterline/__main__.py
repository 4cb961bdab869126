"""``python -m meterline``."""

from meterline.cli.main import cli

cli()
