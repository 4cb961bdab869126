"""``python -m meterline.cli``."""

from meterline.cli.main import cli

cli()
