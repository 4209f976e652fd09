"""`python -m stadspuls` is the `stadspuls` command."""

from stadspuls.cli import app

app()
