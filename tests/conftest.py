"""Shared fixtures: a tenant with three personas, as in healthchecks' tests.

alice is the tenant's admin, bob its CSM, and charlie belongs to another
tenant and must never see the first tenant's data.
"""

import email
import email.policy
import threading
from contextlib import contextmanager

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from bench.processes import free_port
from bench.smtp_sink import OffersPipelining
from csplatform.tenancy.models import Role
from csplatform.tenancy.services import api_key_create

from .factories import MembershipFactory, TenantFactory, UserFactory

# Seeding and signing in create users; the production hasher is slow on purpose.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS


@contextmanager
def made_once(django_db_blocker):
    """Rows made once for a class or module of tests (a seeded demo), rolled back after them.

    Each test still runs in a savepoint of its own inside this transaction, so what one writes the next does not see.
    """
    with django_db_blocker.unblock(), transaction.atomic(), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        yield
        transaction.set_rollback(True)


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="alpha", name="Alpha Software")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="beta", name="Beta Corp")


@pytest.fixture
def alice(tenant):
    user = UserFactory(email="alice@alpha.example", name="Alice Admin")
    MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def bob(tenant):
    user = UserFactory(email="bob@alpha.example", name="Bob CSM")
    MembershipFactory(tenant=tenant, user=user, role=Role.CSM)
    return user


@pytest.fixture
def charlie(other_tenant):
    user = UserFactory(email="charlie@beta.example", name="Charlie Outsider")
    MembershipFactory(tenant=other_tenant, user=user, role=Role.ADMIN)
    return user


def make_api_client(tenant, scopes=("read", "write", "ingest")):
    _, raw_key = api_key_create(tenant=tenant, name="test key", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.raw_key = raw_key
    return client


@pytest.fixture
def api(tenant):
    """An API client holding a read/write/ingest key of `tenant`."""
    return make_api_client(tenant)


@pytest.fixture
def other_api(other_tenant):
    """An API client holding a key of `other_tenant`."""
    return make_api_client(other_tenant)


@pytest.fixture
def worker_database(tmp_path, django_db_blocker):
    """A database of its own that separate processes share: a SQLite file or a PostgreSQL database."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'workers.sqlite3'}"
        return
    name = f"{settings['NAME']}_workers"[:63]
    params = {
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "user": settings["USER"],
        "password": settings["PASSWORD"] or None,
        "dbname": "postgres",
    }
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    yield f"postgres://{settings['USER']}{password}@{params['host']}:{params['port']}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


class Inbox(OffersPipelining):
    """An aiosmtpd handler that keeps every accepted message, parsed; it offers PIPELINING if asked."""

    def __init__(self, pipelining=False):
        self.messages = []
        self.lock = threading.Lock()
        self.pipelining = pipelining

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def subjects(self):
        return sorted(str(message["Subject"]) for message in self.messages)


@pytest.fixture
def smtp_server(request, settings):
    """A real SMTP server on a free loopback port; Django's SMTP backend sends to it.

    Parametrized indirectly with True, it offers PIPELINING.
    """
    inbox = Inbox(pipelining=getattr(request, "param", False))
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield inbox
    controller.stop()


@pytest.fixture
def private_cache(settings):
    """A cache of this test process alone, so throttle budgets never mix with another run's."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "security"}}
    cache.clear()
    yield
    cache.clear()
