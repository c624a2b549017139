"""`python -m heron.interfaces.cli`: the `heron` command."""

from heron.interfaces.cli.app import main

main()
