import pytest
from django.utils import timezone

from alerts.models import AlertRule, Segment, WebhookDelivery, WebhookSubscription
from alerts.services import alert_rule_create, alerts_evaluate, segment_create, segments_refresh
from alerts.webhooks import webhook_emit, webhook_subscription_create
from csplatform.tenancy.models import AuditLogEntry
from lifecycle.models import AccountStage, Stage

from ..factories import AccountFactory, ContactFactory
from .conftest import page

pytestmark = pytest.mark.django_db
BASE = "/t/alpha/settings"


@pytest.fixture
def accounts(tenant):
    return [
        AccountFactory(tenant=tenant, name="Big Co", mrr=5000, plan="pro"),
        AccountFactory(tenant=tenant, name="Mid Co", mrr=800, plan="pro"),
        AccountFactory(tenant=tenant, name="Tiny Co", mrr=10, plan="free"),
    ]


@pytest.fixture
def big(tenant, alice, accounts):
    segment = segment_create(tenant=tenant, actor=alice, key="big", name="Big spenders", criteria_text="account.mrr >= 500")
    segments_refresh(tenant=tenant, account_ids=[account.pk for account in accounts])
    return segment


@pytest.fixture
def private_targets(settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def endpoint(tenant, alice, private_targets):
    subscription, _ = webhook_subscription_create(
        tenant=tenant, actor=alice, url="http://127.0.0.1:9/hooks", event_types=["alert.opened"]
    )
    return subscription


def segment_data(**overrides):
    return {"key": "pro_accounts", "name": "Pro accounts", "subject": "account", "criteria_text": 'account.plan == "pro"'} | overrides


def rule_data(**overrides):
    data = {
        "key": "low_mrr", "name": "Low MRR", "condition_text": "account.mrr < 100", "severity": "critical",
        "notify_owner": "on", "notify_roles": ["admin"], "notify_emails": "ops@alpha.example, cs@alpha.example",
        "channels": ["in_app", "email"], "cooldown_minutes": "60", "enabled": "on",
    }
    return data | overrides


@pytest.mark.parametrize(
    "path", ["/segments/", "/segments/new/", "/alert-rules/", "/alert-rules/new/", "/webhooks/"]
)
def test_a_csm_gets_the_forbidden_page(client, bob, path):
    client.force_login(bob)
    response = client.get(f"{BASE}{path}")
    assert response.status_code == 403
    assert "Settings are for admins" in page(response)


def test_a_csm_cannot_create_a_segment(client, bob, tenant):
    client.force_login(bob)
    assert client.post(f"{BASE}/segments/new/", segment_data()).status_code == 403
    assert not Segment.objects.for_tenant(tenant).exists()


def test_another_tenants_segment_rule_and_endpoint_answer_404(client, charlie, big, endpoint, tenant, alice):
    rule = alert_rule_create(tenant=tenant, actor=alice, key="r", name="R", condition_text="account.mrr > 1")
    client.force_login(charlie)
    for path in (f"/segments/{big.pk}/", f"/alert-rules/{rule.pk}/", f"/webhooks/{endpoint.pk}/"):
        assert client.get(f"/t/beta/settings{path}").status_code == 404
        assert client.get(f"{BASE}{path}").status_code == 404


def test_the_segment_list_shows_members_and_live_matches(admin_client, tenant, big):
    AccountFactory(tenant=tenant, name="New Big", mrr=9000)
    html = page(admin_client.get(f"{BASE}/segments/"))
    assert "Big spenders" in html
    assert f'href="{BASE}/segments/{big.pk}/members/">2</a>' in html
    assert '<td class="num">3</td>' in html


def test_the_members_page_lists_current_members(admin_client, big):
    html = page(admin_client.get(f"{BASE}/segments/{big.pk}/members/"))
    assert "Big Co" in html and "Mid Co" in html and "Tiny Co" not in html
    assert "2 current members" in html


def test_creating_a_segment_is_audited(admin_client, tenant, alice):
    response = admin_client.post(f"{BASE}/segments/new/", segment_data())
    assert response.status_code == 302
    segment = Segment.objects.for_tenant(tenant).get(key="pro_accounts")
    assert segment.criteria_text == 'account.plan == "pro"'
    assert AuditLogEntry.objects.for_tenant(tenant).get(action="segment.created").actor == alice


def test_a_bad_segment_criteria_is_shown_and_what_was_typed_is_kept(admin_client, tenant):
    response = admin_client.post(f"{BASE}/segments/new/", segment_data(name="Keep me", criteria_text="account.mrr >="))
    assert response.status_code == 200
    html = page(response)
    assert 'value="Keep me"' in html
    assert "Line 1, column" in html
    assert "account.mrr &gt;=</textarea>" in html
    assert not Segment.objects.for_tenant(tenant).exists()


def test_a_duplicate_segment_key_is_reported_on_the_key(admin_client, big):
    html = page(admin_client.post(f"{BASE}/segments/new/", segment_data(key="big")))
    assert "A segment with key &#x27;big&#x27; already exists." in html


def test_editing_a_segment_keeps_its_key_and_subject(admin_client, tenant, big):
    data = segment_data(key="renamed", subject="contact", name="Very big", criteria_text="account.mrr >= 1000")
    assert admin_client.post(f"{BASE}/segments/{big.pk}/", data).status_code == 302
    big.refresh_from_db()
    assert (big.key, big.subject, big.name, big.criteria_text) == ("big", "account", "Very big", "account.mrr >= 1000")


def test_the_check_button_previews_matches_without_saving(admin_client, tenant, accounts):
    html = page(admin_client.post(f"{BASE}/segments/new/", segment_data(action="check", criteria_text="account.mrr > 500")))
    assert "2 of 3 accounts match" in html
    assert not Segment.objects.for_tenant(tenant).exists()


def test_the_live_preview_of_contact_criteria_counts_contacts(admin_client, tenant, accounts):
    ContactFactory(tenant=tenant, account=accounts[0], name="Ada Admin", role="administrator")
    ContactFactory(tenant=tenant, account=accounts[1], name="Uma User", role="user")
    response = admin_client.post(
        f"{BASE}/criteria/preview/?field=criteria_text&subject=contact", {"criteria_text": 'contact.role == "administrator"'}
    )
    html = page(response)
    assert "1 of 2 contacts match" in html and "Ada Admin" in html and "Uma User" not in html
    assert "<html" not in html


def test_the_live_preview_follows_the_subject_chosen_on_the_form(admin_client, tenant, accounts):
    ContactFactory(tenant=tenant, account=accounts[0], name="Ada Admin", role="administrator")
    data = {"criteria_text": 'contact.role == "administrator"', "subject": "contact"}
    html = page(admin_client.post(f"{BASE}/criteria/preview/?field=criteria_text&subject=account", data))
    assert "1 of 1 contact matches" in html


def test_the_new_rule_page_offers_the_criteria_reference(admin_client):
    html = page(admin_client.get(f"{BASE}/alert-rules/new/"))
    assert "Fields you can use" in html and "<code>account.mrr</code>" in html
    assert 'hx-post="/t/alpha/settings/criteria/preview/?field=condition_text' in html


def test_deleting_a_segment_is_audited(admin_client, tenant, big):
    assert admin_client.post(f"{BASE}/segments/{big.pk}/delete/").status_code == 302
    assert not Segment.objects.for_tenant(tenant).exists()
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="segment.deleted").exists()


def test_creating_an_alert_rule_saves_recipients_channels_and_cooldown(admin_client, tenant, alice):
    response = admin_client.post(f"{BASE}/alert-rules/new/", rule_data())
    assert response.status_code == 302
    rule = AlertRule.objects.for_tenant(tenant).get(key="low_mrr")
    assert rule.severity == "critical" and rule.cooldown_minutes == 60
    assert rule.notify_emails == ["cs@alpha.example", "ops@alpha.example"]
    assert rule.notify_roles == ["admin"] and rule.channels == ["email", "in_app"]
    assert AuditLogEntry.objects.for_tenant(tenant).get(action="alert_rule.created").actor == alice


def test_a_rule_leaves_customers_who_left_alone_unless_the_admin_ticks_the_box(admin_client, tenant, alice):
    admin_client.post(f"{BASE}/alert-rules/new/", rule_data())
    rule = AlertRule.objects.for_tenant(tenant).get(key="low_mrr")
    assert rule.include_terminal_stages is False
    assert "Also watch accounts in a terminal stage, such as Churned" in page(
        admin_client.get(f"{BASE}/alert-rules/{rule.pk}/")
    )

    admin_client.post(f"{BASE}/alert-rules/{rule.pk}/", rule_data(include_terminal_stages="on"))

    rule.refresh_from_db()
    assert rule.include_terminal_stages is True
    change = AuditLogEntry.objects.for_tenant(tenant).get(action="alert_rule.updated")
    assert (change.before["include_terminal_stages"], change.after["include_terminal_stages"]) == (False, True)


def test_the_rule_preview_counts_customers_who_left_only_when_the_rule_watches_them(admin_client, tenant, accounts):
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True)
    gone = AccountFactory(tenant=tenant, name="Gone Co", mrr=0)
    AccountStage.objects.create(tenant=tenant, account=gone, stage=churned, entered_at=timezone.now(), entered_day=1)
    preview = f"{BASE}/criteria/preview/?field=condition_text&subject=account&departed=include_terminal_stages"

    unticked = page(admin_client.post(preview, {"condition_text": "account.mrr < 100"}))
    ticked = page(admin_client.post(preview, {"condition_text": "account.mrr < 100", "include_terminal_stages": "on"}))
    checked = page(admin_client.post(f"{BASE}/alert-rules/new/", rule_data(action="check")))

    assert "1 of 3 accounts matches now. The 1 in a terminal stage, customers who left, is left out." in unticked
    assert "Tiny Co" in unticked and "Gone Co" not in unticked
    assert "2 of 4 accounts match now.</p>" in ticked and "Gone Co" in ticked
    assert "1 of 3 accounts matches now. The 1 in a terminal stage" in checked
    assert "&amp;departed=include_terminal_stages" in checked
    assert "change from:[name='include_terminal_stages']" in checked


def test_slack_without_a_webhook_url_is_an_error_on_that_field(admin_client, tenant):
    html = page(admin_client.post(f"{BASE}/alert-rules/new/", rule_data(channels=["slack"], name="Keep this name")))
    assert "The slack channel needs the incoming webhook URL." in html
    assert 'value="Keep this name"' in html
    assert not AlertRule.objects.for_tenant(tenant).exists()


def test_an_invalid_email_recipient_is_reported(admin_client):
    html = page(admin_client.post(f"{BASE}/alert-rules/new/", rule_data(notify_emails="not-an-address")))
    assert "&#x27;not-an-address&#x27; is not an email address." in html


def test_a_rules_count_of_active_alerts_opens_them_in_the_inbox_for_every_owner(admin_client, tenant, alice, accounts):
    rule = alert_rule_create(tenant=tenant, actor=alice, key="r", name="Rule R", condition_text="account.mrr < 100")
    quiet = alert_rule_create(tenant=tenant, actor=alice, key="q", name="Rule Q", condition_text="account.mrr < 0")
    alerts_evaluate(tenant=tenant, account_ids=[account.pk for account in accounts])

    html = page(admin_client.get(f"{BASE}/alert-rules/"))

    link = f'href="/t/alpha/alerts/?rule={rule.pk}&amp;owner=all"'
    assert f'{link} title="Open the rule\'s alerts in the inbox">1</a>' in html
    assert f"?rule={quiet.pk}&amp;" not in html
    inbox = page(admin_client.get(f"/t/alpha/alerts/?rule={rule.pk}&owner=all"))
    assert "Rule R: Tiny Co" in inbox and "Mid Co" not in inbox


def test_disabling_enabling_and_deleting_a_rule(admin_client, tenant, alice):
    rule = alert_rule_create(tenant=tenant, actor=alice, key="r", name="Rule R", condition_text="account.mrr > 1")
    admin_client.post(f"{BASE}/alert-rules/{rule.pk}/toggle/", {"enabled": "0"})
    rule.refresh_from_db()
    assert rule.enabled is False
    assert "Disabled" in page(admin_client.get(f"{BASE}/alert-rules/"))
    admin_client.post(f"{BASE}/alert-rules/{rule.pk}/toggle/", {"enabled": "1"})
    rule.refresh_from_db()
    assert rule.enabled is True
    admin_client.post(f"{BASE}/alert-rules/{rule.pk}/delete/")
    assert not AlertRule.objects.for_tenant(tenant).exists()
    actions = set(AuditLogEntry.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"alert_rule.updated", "alert_rule.deleted"} <= actions


def test_a_new_endpoint_shows_its_secret_once(admin_client, tenant, private_targets):
    response = admin_client.post(
        f"{BASE}/webhooks/", {"url": "http://127.0.0.1:9/hooks", "event_types": ["alert.opened", "alert.resolved"]}
    )
    subscription = WebhookSubscription.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and response.url == f"{BASE}/webhooks/{subscription.pk}/"
    assert subscription.secret in page(admin_client.get(response.url))
    assert subscription.secret not in page(admin_client.get(response.url))
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="webhook.created").exists()


def test_an_endpoint_the_platform_will_not_call_is_refused_on_the_url(admin_client, tenant, settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = False
    html = page(admin_client.post(f"{BASE}/webhooks/", {"url": "http://127.0.0.1:9/hooks", "event_types": ["alert.opened"]}))
    assert 'class="field-error"' in html
    assert 'value="http://127.0.0.1:9/hooks"' in html
    assert not WebhookSubscription.objects.for_tenant(tenant).exists()


def test_an_endpoint_needs_an_event_type(admin_client, tenant, private_targets):
    html = page(admin_client.post(f"{BASE}/webhooks/", {"url": "http://127.0.0.1:9/hooks"}))
    assert "This field is required." in html
    assert not WebhookSubscription.objects.for_tenant(tenant).exists()


def test_rotating_the_secret_shows_the_new_one_once(admin_client, tenant, endpoint):
    old = endpoint.secret
    response = admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/rotate/")
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    first, second = page(admin_client.get(response.url)), page(admin_client.get(response.url))
    assert endpoint.secret in first and endpoint.secret not in second and old not in first
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="webhook.secret_rotated").exists()


def test_the_event_choices_say_when_each_event_is_sent(admin_client):
    html = page(admin_client.get(f"{BASE}/webhooks/"))
    assert "account.health_changed: An account&#x27;s health changed colour" in html
    assert "task.completed: A task was done" in html


def test_an_endpoints_page_changes_its_address_and_events_and_keeps_its_secret(admin_client, tenant, endpoint):
    secret = endpoint.secret
    data = {"url": "http://127.0.0.1:9/v2/hooks", "description": "CRM sync", "event_types": ["task.created"]}

    response = admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/", data)

    endpoint.refresh_from_db()
    assert response.status_code == 302 and response.url == f"{BASE}/webhooks/{endpoint.pk}/"
    assert (endpoint.url, endpoint.description, endpoint.event_types) == (data["url"], "CRM sync", ["task.created"])
    assert endpoint.secret == secret
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="webhook.updated")
    assert entry.before["event_types"] == ["alert.opened"] and entry.after["event_types"] == ["task.created"]
    assert "Saved the endpoint http://127.0.0.1:9/v2/hooks." in page(admin_client.get(response.url))


def test_saving_an_endpoint_unchanged_records_nothing(admin_client, tenant, endpoint):
    data = {"url": endpoint.url, "description": "", "event_types": ["alert.opened"]}

    response = admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/", data)

    assert response.status_code == 302
    assert not AuditLogEntry.objects.for_tenant(tenant).filter(action="webhook.updated").exists()


def test_an_endpoint_changed_to_an_address_the_platform_will_not_call_keeps_its_old_one(
    admin_client, tenant, endpoint, settings
):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = False
    data = {"url": "http://10.0.0.5/hooks", "event_types": ["alert.opened", "alert.resolved"]}

    html = page(admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/", data))

    assert 'class="field-error"' in html and 'value="http://10.0.0.5/hooks"' in html
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types) == ("http://127.0.0.1:9/hooks", ["alert.opened"])


def test_an_endpoint_left_with_no_event_is_refused_on_that_field(admin_client, endpoint):
    html = page(admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/", {"url": endpoint.url}))

    assert "This field is required." in html
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["alert.opened"]


def failed_delivery(tenant, endpoint, key="event:1"):
    (delivery_id,) = webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key=key)
    WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery_id).update(
        status="failed", attempts=8, last_error="HTTP 502: Bad Gateway", next_attempt_at=None
    )
    return delivery_id


def test_an_endpoints_failed_deliveries_are_sent_again_from_its_page(admin_client, tenant, endpoint):
    first, second = failed_delivery(tenant, endpoint, "event:1"), failed_delivery(tenant, endpoint, "event:2")
    url = f"{BASE}/webhooks/{endpoint.pk}/"
    html = page(admin_client.get(url))
    assert "Send the 2 failed deliveries again" in html and html.count(">Send again</button>") == 2

    response = admin_client.post(f"{url}retry/", {"delivery": [first]})

    assert response.status_code == 302 and response.url == url
    statuses = dict(WebhookDelivery.objects.for_tenant(tenant).values_list("pk", "status"))
    assert statuses == {first: "pending", second: "failed"}
    assert "Sending 1 failed delivery again" in page(admin_client.get(url))
    admin_client.post(f"{url}retry/")
    assert WebhookDelivery.objects.for_tenant(tenant).get(pk=second).attempts == 0
    assert "Send the" not in page(admin_client.get(url))


def test_sending_again_with_nothing_failed_or_a_bad_id_says_so_and_changes_nothing(admin_client, tenant, endpoint):
    delivery_id = failed_delivery(tenant, endpoint)
    url = f"{BASE}/webhooks/{endpoint.pk}/"

    admin_client.post(f"{url}retry/", {"delivery": ["first"]})
    assert "Select rows from the list." in page(admin_client.get(url))
    admin_client.post(f"{url}retry/", {"delivery": [delivery_id + 1000]})
    assert "No failed delivery to send again" in page(admin_client.get(url))
    assert WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id).status == "failed"


def test_an_endpoints_delivery_log_shows_the_status_and_event_chosen(admin_client, tenant, endpoint):
    failed_delivery(tenant, endpoint, "event:failed")
    webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key="event:pending")
    admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/test/")
    url = f"{BASE}/webhooks/{endpoint.pk}/"

    failed = page(admin_client.get(url, {"status": "failed"}))
    tests = page(admin_client.get(url, {"event_type": "webhook.test"}))
    none = page(admin_client.get(url, {"status": "delivered"}))

    assert failed.count(">Send again</button>") == 1 and "<code>webhook.test</code>" not in failed
    assert "<code>webhook.test</code>" in tests and "<code>alert.opened</code>" not in tests
    assert "No delivery matches these filters." in none


def test_an_unknown_delivery_status_is_an_error_beside_its_filter_and_the_event_filter_still_applies(
    admin_client, tenant, endpoint
):
    failed_delivery(tenant, endpoint)
    admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/test/")

    html = page(admin_client.get(f"{BASE}/webhooks/{endpoint.pk}/", {"status": "lost", "event_type": "webhook.test"}))

    assert 'class="field-error"' in html and "lost is not one of the available choices." in html
    assert "<code>webhook.test</code>" in html and "<code>alert.opened</code>" not in html


def test_disabling_an_endpoint(admin_client, endpoint):
    admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/toggle/", {"active": "0"})
    endpoint.refresh_from_db()
    assert endpoint.active is False


def test_a_test_event_appears_in_the_delivery_log_with_the_body_it_sends(admin_client, tenant, endpoint):
    admin_client.post(f"{BASE}/webhooks/{endpoint.pk}/test/")
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(subscription=endpoint)
    assert delivery.event_type == "webhook.test"
    WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk).update(
        attempts=2, last_status_code=503, last_error="Service Unavailable"
    )
    html = page(admin_client.get(f"{BASE}/webhooks/{endpoint.pk}/"))
    assert "webhook.test" in html and "503" in html and "Service Unavailable" in html
    assert '<td class="num">2</td>' in html
    assert f"&quot;id&quot;: &quot;{delivery.event_id}&quot;" in html and "&quot;tenant&quot;: &quot;alpha&quot;" in html


def test_the_settings_nav_has_the_new_sections(admin_client):
    html = page(admin_client.get(f"{BASE}/segments/"))
    for path in ("/segments/", "/alert-rules/", "/playbooks/", "/webhooks/"):
        assert f'href="{BASE}{path}"' in html


def test_an_admin_adds_the_starter_rules_from_the_alert_rules_page(admin_client, tenant):
    from lifecycle.services import stages_apply_template

    stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=None)
    assert "Card expires during renewal" in page(admin_client.get(f"{BASE}/alert-rules/"))

    response = admin_client.post(f"{BASE}/alert-rules/starter/", follow=True)

    assert "Added " in page(response)
    assert AlertRule.objects.for_tenant(tenant).filter(key="card_expiring_in_renewal").exists()
    assert Segment.objects.for_tenant(tenant).filter(key="trial_ending_admins").exists()
    assert "Starter rules and segments" not in page(admin_client.get(f"{BASE}/alert-rules/"))


def test_a_csm_cannot_add_the_starter_rules(client, bob, tenant):
    client.force_login(bob)
    assert client.post(f"{BASE}/alert-rules/starter/").status_code == 403
    assert not AlertRule.objects.for_tenant(tenant).exists()
