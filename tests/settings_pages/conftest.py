import pytest

from csplatform.tenancy.models import Role

from ..factories import MembershipFactory, UserFactory


@pytest.fixture
def vera(tenant):
    """A viewer of the tenant."""
    user = UserFactory(email="vera@alpha.example", name="Vera Viewer")
    MembershipFactory(tenant=tenant, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


def page(response):
    return response.content.decode()
