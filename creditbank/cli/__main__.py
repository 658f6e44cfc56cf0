"""``python -m creditbank.cli``."""

from creditbank.cli.main import run

run()
