"""Replaying an ingest batch stores nothing twice: not the events, not the rollups."""

import datetime as dt

import pytest
from django.utils import timezone

from csplatform.customers.models import Contact, DailyPropertyRollup, DailyRollup, UsageEvent
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory
from tests.security.conftest import record_figure

REPLAYS = 10


def stored_state(tenant):
    return {
        "events": sorted(UsageEvent.objects.for_tenant(tenant).values_list("message_id", "event", "timestamp")),
        "rollups": sorted(
            DailyRollup.objects.for_tenant(tenant).values_list("account_id", "contact_ref", "day", "event", "count")
        ),
        "property_rollups": sorted(
            DailyPropertyRollup.objects.for_tenant(tenant).values_list(
                "account_id", "day", "event", "prop", "total", "count", "latest_value"
            )
        ),
        "last_seen": sorted(Contact.objects.for_tenant(tenant).values_list("external_id", "last_seen_at")),
    }


@pytest.fixture
def batch(tenant):
    account = AccountFactory(tenant=tenant, external_id="replayed")
    ContactFactory(account=account, external_id="replayer")
    start = timezone.now() - dt.timedelta(days=8)
    return [
        {
            "message_id": f"replay-{n}",
            "account": "replayed",
            "contact": "replayer" if n % 2 else None,
            "event": ("login", "report_exported")[n % 2],
            "timestamp": (start + dt.timedelta(hours=7 * n)).isoformat(),
            "properties": {"rows": n},
        }
        for n in range(25)
    ]


def test_a_batch_replayed_ten_times_adds_no_event_and_no_rollup(tenant, batch):
    client = make_api_client(tenant, scopes=["ingest"])
    first = client.post("/api/v1/events/batch", {"events": batch}, format="json")
    assert first.status_code in (200, 201, 202), first.content
    after_first = stored_state(tenant)
    assert len(after_first["events"]) == len(batch)

    for replay in range(REPLAYS):
        # Replays come in any order and in pieces, as a client retrying after timeouts sends them.
        items = batch[replay % 5 :] + batch[: replay % 5]
        for piece in (items[:10], items[10:]):
            response = client.post("/api/v1/events/batch", {"events": piece[::-1] if replay % 2 else piece}, format="json")
            assert response.status_code in (200, 201, 202), response.content
        assert stored_state(tenant) == after_first

    record_figure("ingest replay: events replayed", REPLAYS * len(batch))
