import pytest

from csplatform.tenancy.models import AuditLogEntry, Membership, Role

from ..factories import MembershipFactory, UserFactory
from .conftest import page

pytestmark = pytest.mark.django_db

PARIS_MORNINGS = {
    "timezone": "Europe/Paris", "work_start_hour": 8, "work_end_hour": 12, "work_days": [0, 2, 4], "daily_digest": True,
    "email_when_told": True,
}


def hours_url(tenant, user):
    membership = Membership.objects.for_tenant(tenant).get(user=user)
    return f"/t/{tenant.slug}/settings/members/{membership.pk}/hours/"


def hours_of(tenant, user):
    membership = Membership.objects.for_tenant(tenant).get(user=user)
    return {name: getattr(membership, name) for name in PARIS_MORNINGS}


def test_a_new_member_works_nine_to_five_monday_to_friday_in_the_teams_zone(tenant, bob):
    assert hours_of(tenant, bob) == {
        "timezone": "", "work_start_hour": 9, "work_end_hour": 17, "work_days": [0, 1, 2, 3, 4], "daily_digest": True,
        "email_when_told": True,
    }


def test_the_members_page_shows_each_members_working_hours(admin_client, bob):
    html = page(admin_client.get("/t/alpha/settings/members/"))
    assert "09:00–17:00, Mon, Tue, Wed, Thu, Fri" in html
    assert "Change<span class=\"visually-hidden\"> working hours of bob@alpha.example" in html


def test_an_admin_changes_a_members_working_hours_and_the_change_is_audited(admin_client, tenant, alice, bob):
    response = admin_client.post(hours_url(tenant, bob), PARIS_MORNINGS, follow=True)

    assert "Working hours of bob@alpha.example saved." in page(response)
    assert hours_of(tenant, bob) == PARIS_MORNINGS
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="member.hours_changed")
    assert entry.actor == alice
    assert (entry.before["work_start_hour"], entry.before["timezone"]) == (9, "")
    assert entry.after == {"email": "bob@alpha.example", **PARIS_MORNINGS}


def test_saving_the_same_hours_again_writes_no_audit_entry(admin_client, tenant, bob):
    admin_client.post(hours_url(tenant, bob), PARIS_MORNINGS)
    admin_client.post(hours_url(tenant, bob), PARIS_MORNINGS)
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="member.hours_changed").count() == 1


def test_a_csm_sets_their_own_working_hours_but_not_anyone_elses(client, tenant, alice, bob):
    client.force_login(bob)
    assert f'href="{hours_url(tenant, bob)}">My working hours' in page(client.get("/t/alpha/tasks/"))

    response = client.post(hours_url(tenant, bob), PARIS_MORNINGS, follow=True)
    assert "Working hours of bob@alpha.example saved." in page(response)
    assert hours_of(tenant, bob) == PARIS_MORNINGS

    assert client.get(hours_url(tenant, alice)).status_code == 403
    assert client.post(hours_url(tenant, alice), PARIS_MORNINGS).status_code == 403
    assert hours_of(tenant, alice)["timezone"] == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"work_start_hour": 12, "work_end_hour": 12}, "Working hours must end after they start."),
        ({"work_start_hour": 15, "work_end_hour": 9}, "Working hours must end after they start."),
        ({"timezone": "Mars/Olympus_Mons"}, "Select a valid choice."),
        ({"work_days": []}, "This field is required."),
        ({"work_days": [7]}, "Select a valid choice."),
    ],
)
def test_working_hours_that_make_no_sense_are_refused_on_the_form(admin_client, tenant, bob, change, message):
    response = admin_client.post(hours_url(tenant, bob), {**PARIS_MORNINGS, **change})

    assert response.status_code == 200
    assert message in page(response)
    assert hours_of(tenant, bob)["timezone"] == ""
    assert not AuditLogEntry.objects.for_tenant(tenant).filter(action="member.hours_changed").exists()


def test_a_member_of_another_tenant_has_no_working_hours_page_here(admin_client, other_tenant):
    outsider = MembershipFactory(tenant=other_tenant, user=UserFactory(email="out@beta.example"), role=Role.CSM)
    url = f"/t/alpha/settings/members/{outsider.pk}/hours/"
    assert admin_client.get(url).status_code == 404
    assert admin_client.post(url, PARIS_MORNINGS).status_code == 404
