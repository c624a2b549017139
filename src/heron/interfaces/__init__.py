"""The ways people reach Heron: the REST API (rest/), and in time the CLI and web page."""
