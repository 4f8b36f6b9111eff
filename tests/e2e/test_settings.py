"""The settings pages in a real browser: the live criteria check and an API key shown once.

Screenshots land in var/screenshots/ for a person to look at.
"""

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from alerts.models import Alert
from csplatform import pipeline
from csplatform.customers.services import account_mark_dirty
from lifecycle.services import account_move_stage, stage_create

from ..factories import AccountFactory
from .conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e

@pytest.fixture
def browser_page(chromium, live_server, alice):
    """A chromium page signed in as alice, the tenant's admin."""
    client = Client()
    client.force_login(alice)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    page = context.new_page()
    # Script errors, Content-Security-Policy refusals and anything that failed to load, the icon included.
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors
    return page


def test_typing_a_criteria_with_a_syntax_error_shows_where_it_is(browser_page, live_server, tenant, alice):
    stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    page = browser_page
    page.goto(f"{live_server.url}/t/alpha/settings/stages/new/")
    editor = page.locator("#id_entry_criteria_text")
    editor.click()
    page.keyboard.type("account.mrr >= 10 and account.plan ==", delay=15)
    alert = page.locator("#criteria-feedback [role=alert]")
    alert.wait_for(timeout=10_000)
    assert "Line 1, column" in alert.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "settings-criteria-error.png"), full_page=True)

    page.keyboard.type(' "pro"', delay=15)
    page.locator("#criteria-feedback .criteria-ok").wait_for(timeout=10_000)
    assert "Valid." in page.locator("#criteria-feedback").inner_text()
    assert page.console_errors == []


def test_ticking_watch_terminal_stages_brings_the_customers_who_left_into_the_rules_live_check(
    browser_page, live_server, tenant, alice
):
    adopting = stage_create(tenant=tenant, actor=alice, key="adopting", name="Adopting")
    churned = stage_create(tenant=tenant, actor=alice, key="churned", name="Churned", is_terminal=True)
    for name, stage in (("Quiet Co", adopting), ("Gone Co", churned)):
        account = AccountFactory(tenant=tenant, name=name, mrr=0)
        account_move_stage(tenant=tenant, account=account, to_stage=stage, actor=alice, reason="Chose a competitor")
    page = browser_page
    page.goto(f"{live_server.url}/t/alpha/settings/alert-rules/new/")
    page.locator("#id_condition_text").click()
    page.keyboard.type("account.mrr < 100", delay=15)
    feedback = page.locator("#condition_text-feedback")
    feedback.get_by_text("1 of 1 account matches now.").wait_for(timeout=10_000)
    assert "The 1 in a terminal stage, customers who left, is left out." in feedback.inner_text()

    page.get_by_label("Also watch accounts in a terminal stage, such as Churned").check()

    feedback.get_by_text("2 of 2 accounts match now.").wait_for(timeout=10_000)
    assert "Gone Co" in feedback.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "settings-rule-watches-departed.png"), full_page=True)
    assert page.console_errors == []


def test_a_new_api_key_is_shown_once_and_gone_after_a_reload(browser_page, live_server, tenant):
    page = browser_page
    page.goto(f"{live_server.url}/t/alpha/settings/api-keys/")
    page.get_by_label("Name").fill("Segment production")
    page.get_by_label("Ingest").check()
    page.get_by_role("button", name="Create key").click()
    raw_key = page.locator("#raw-key").input_value()
    assert raw_key.startswith("csp_")
    page.screenshot(path=str(SCREENSHOTS / "settings-api-key-created.png"), full_page=True)

    page.reload()
    assert "cannot be shown again" in page.content()
    assert raw_key not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "settings-api-key-reloaded.png"), full_page=True)
    page.goto(f"{live_server.url}/t/alpha/settings/api-keys/")
    assert raw_key not in page.content()
    assert raw_key[:12] in page.content()
    assert page.console_errors == []


def test_an_admin_reads_how_far_behind_the_results_are_from_the_settings_menu(browser_page, live_server, tenant):
    accounts = AccountFactory.create_batch(3, tenant=tenant)
    pipeline.mark_all_dirty(tenant=tenant)
    pipeline.recompute_dirty(tenant=tenant, threads=1)
    account_mark_dirty(tenant=tenant, account_ids=[accounts[0].pk])
    page = browser_page
    page.goto(f"{live_server.url}/t/alpha/settings/stages/")

    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Data freshness").click()

    assert "1 account waiting" in page.locator("main").inner_text()
    assert page.get_by_role("row").nth(1).inner_text().split("\t")[2:] == ["3", "0", "Complete"]
    page.screenshot(path=str(SCREENSHOTS / "settings-data-freshness.png"), full_page=True)
    assert page.console_errors == []


def test_a_member_opens_todays_digest_from_the_user_menu_and_follows_an_account_link(
    browser_page, live_server, tenant, alice, settings
):
    settings.CSP_PUBLIC_URL = live_server.url
    account = AccountFactory(tenant=tenant, owner=alice, name="Granite Labs")
    Alert.objects.create(tenant=tenant, account=account, title="Health dropped: Granite Labs", severity="critical",
                         opened_at=timezone.now())
    page = browser_page
    page.goto(f"{live_server.url}/t/alpha/")

    page.locator(".user-menu summary").click()
    page.get_by_role("link", name="My daily digest").click()

    assert "Alpha Software: 1 open alert" in page.locator("main").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "settings-daily-digest.png"), full_page=True)
    page.get_by_role("link", name=f"{live_server.url}/t/alpha/accounts/{account.pk}/").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Granite Labs")
    assert page.console_errors == []


def test_a_member_changes_their_password_from_the_profile_and_signs_in_with_it(sign_in, live_server, alice):
    page = sign_in(alice)

    page.locator(".user-menu summary").click()
    page.get_by_role("link", name="Your profile").click()
    page.get_by_label("Old password").fill("password")
    page.get_by_label("New password", exact=True).fill("a brand new secret 42")
    page.get_by_label("New password confirmation").fill("a brand new secret 42")
    page.get_by_role("button", name="Change password").click()

    assert "Your password is changed." in page.locator(".messages").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "profile.png"), full_page=True)
    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill("a brand new secret 42")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/t/*/")
