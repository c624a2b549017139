"""Kept for `python -m heron.cli` and old imports: the CLI is `heron.interfaces.cli.app`."""

from heron.interfaces.cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
