"""Figures the security and fault tests measure, printed in pytest's terminal summary."""

import pytest

FIGURES = []


def record_figure(label, value):
    """Note a figure (requests swept, cases fuzzed, events replayed) for the summary."""
    FIGURES.append((label, value))
    print(f"{label}: {value}")


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("security and reliability figures")
        for label, value in FIGURES:
            terminalreporter.write_line(f"{label}: {value}")
        # The fault and playbook tests' conftests register this hook too; print the figures once.
        FIGURES.clear()


@pytest.fixture(autouse=True)
def security_cache(private_cache):
    """Every test here (and in the fault tests) counts its throttles and sign-in limits from zero."""
