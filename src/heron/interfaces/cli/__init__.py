"""The `heron` command line (Typer): the app and its commands are in `app.py`."""
