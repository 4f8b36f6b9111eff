import pytest

from csplatform.customers.models import ContactRole
from lifecycle.services import stages_apply_template
from tests.factories import AccountFactory, ContactFactory
from tests.security.conftest import pytest_terminal_summary  # noqa: F401  (the worker crash test's figures)


@pytest.fixture
def stages(tenant, alice):
    """Seed 001's lifecycle: onboarding -> adopting -> expanding -> renewal."""
    return {
        stage.key: stage
        for stage in stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)
    }


@pytest.fixture
def customer(tenant, bob):
    """An account owned by bob with a user contact and, created later, its administrator."""
    account = AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob)
    ContactFactory(account=account, name="Uma User", email="uma@acme.example", role=ContactRole.USER)
    ContactFactory(account=account, name="Ada Admin", email="ada@acme.example", role=ContactRole.ADMINISTRATOR)
    return account
