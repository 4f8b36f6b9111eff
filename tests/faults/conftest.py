"""The fault tests share the security tests' private cache and figure summary."""

from tests.security.conftest import pytest_terminal_summary, security_cache  # noqa: F401
