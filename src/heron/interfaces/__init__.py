"""The ways people reach Heron: the command line (cli/), the REST API (rest/) and the web page
(web/, served by the API). They call `heron.Heron`; the CLI's `serve` starts the API."""
