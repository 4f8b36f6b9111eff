"""The fault tests share the security tests' private cache and figure summary."""

from tests.security.conftest import private_cache, pytest_terminal_summary  # noqa: F401
