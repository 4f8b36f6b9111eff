"""Configuration changes of the tenancy services land in the audit log with who, before and after."""

import pytest
from django.core.exceptions import ValidationError

from csplatform.tenancy.members import member_hours_change
from csplatform.tenancy.models import AuditLogEntry, Membership, Role
from csplatform.tenancy.services import api_key_create, api_key_revoke, membership_set

from ..factories import UserFactory

pytestmark = pytest.mark.django_db


def entries(tenant, action):
    return list(AuditLogEntry.objects.for_tenant(tenant).filter(action=action).order_by("id"))


def test_setting_a_membership_audits_the_addition_and_each_role_change(tenant, alice):
    nina = UserFactory(email="nina@alpha.example")

    membership_set(tenant=tenant, user=nina, role=Role.VIEWER, actor=alice)
    membership_set(tenant=tenant, user=nina, role=Role.CSM, actor=alice)
    membership_set(tenant=tenant, user=nina, role=Role.CSM, actor=alice)

    added, promoted = entries(tenant, "member.set")
    assert (added.actor, added.before, added.after) == (alice, None, {"email": nina.email, "role": "viewer"})
    assert (promoted.before["role"], promoted.after) == ("viewer", {"email": nina.email, "role": "csm"})
    assert Membership.objects.for_tenant(tenant).get(user=nina).role == Role.CSM


def test_a_membership_set_by_a_script_is_audited_as_the_system(tenant):
    membership_set(tenant=tenant, user=UserFactory(), role=Role.ADMIN)
    (entry,) = entries(tenant, "member.set")
    assert (entry.actor, entry.actor_label) == (None, "system")


def test_revoking_a_key_records_it_inactive_after_with_the_time(tenant, alice):
    api_key, _ = api_key_create(tenant=tenant, name="Segment", scopes=["ingest"])

    assert api_key_revoke(tenant=tenant, api_key=api_key, actor=alice)

    (entry,) = entries(tenant, "api_key.revoked")
    api_key.refresh_from_db()
    assert entry.before == {"active": True}
    assert entry.after == {"active": False, "revoked_at": api_key.revoked_at.isoformat()}


def test_working_hours_that_end_before_they_start_are_refused_by_the_service(tenant, alice, bob):
    membership = Membership.objects.for_tenant(tenant).get(user=bob)
    with pytest.raises(ValidationError, match="end after they start"):
        member_hours_change(
            tenant=tenant, membership=membership, actor=alice, timezone="", work_start_hour=17, work_end_hour=9,
            work_days=[0], daily_digest=True, email_when_told=True,
        )
    assert entries(tenant, "member.hours_changed") == []
