"""Suite-wide hooks: kernel-test marking, no skipping kernel tests, the User-Mode Linux plugin."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from _pytest.reports import TestReport

from tests import uml
from tests.pg import pg_server, store_location  # noqa: F401  (fixtures for every test)

KERNEL_DIR = Path(__file__).parent / "kernel"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_uml: never delegated to User-Mode Linux (tests of the UML plugin itself)")
    uml.configure(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Runs before -m deselection and before the UML plugin (trylast) looks at the markers.
    for item in items:
        if item.path.is_relative_to(KERNEL_DIR) or item.get_closest_marker("needs"):
            item.add_marker(pytest.mark.kernel)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, TestReport, TestReport]:
    report = yield
    # Kernel tests must not skip (a skipped kernel test is a silently untested feature): a skip
    # of any kind, marker or pytest.skip() in a fixture, becomes a failure.
    if report.skipped and not hasattr(report, "wasxfail") and uml.is_kernel_test(item):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"kernel tests must not skip; skip reason: {reason}"
    return report
