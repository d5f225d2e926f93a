"""The command-line fixtures of test_cli.py (a store with a data center, hosts on fake agents,
a network attached to them), shared with the other command-line test modules."""

from tests.unit.engine.test_cli import attached, cli, dc, tls, transport  # noqa: F401
