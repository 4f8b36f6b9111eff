"""The dashboard in a real browser: chromium driven by playwright against the live test server.

Each test saves a screenshot under var/screenshots/ for a person to look at.
"""

import csv
import io
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from alerts.library import starter_alerts_install
from alerts.services import segment_create, segments_refresh
from csplatform.customers.models import Account
from lifecycle.models import Stage, StageTransition, TransitionKind
from lifecycle.services import stage_create

from ..factories import AccountFactory, ContactFactory
from ..pages.conftest import STAGES, place, score
from .conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e

BREAKDOWN = [
    {"source": "logins_30d", "label": "Logins in the last 30 days", "value": 6.0, "points": 30.0, "weight": 2,
     "skipped": False, "contribution": 20.0},
    {"source": "seats_used_pct", "label": "Seats in use (%)", "value": 45.0, "points": 45.0, "weight": 1,
     "skipped": False, "contribution": 15.0},
]


@pytest.fixture
def portfolio(transactional_db, tenant, alice):
    stages = {
        key: Stage.objects.create(tenant=tenant, key=key, name=name, colour=colour, position=position,
                                  is_initial=position == 1, expected_days=30)
        for position, (key, name, colour) in enumerate(STAGES, start=1)
    }
    accounts = {}
    for name, stage, value, history in (
        ("Juniper Health", "adoption", 35, [80, 76, 70, 66, 61, 55, 48, 41, 38]),
        ("Cobalt Travel", "adoption", 82, [60, 64, 70, 72, 75, 79, 80, 81, 82]),
        ("Maple Foods", "onboarding", 58, [50, 52, 55, 57, 58, 58, 57, 58, 58]),
        ("Granite Labs", "renewal", 91, [88, 89, 90, 90, 91, 91, 92, 91, 91]),
    ):
        account = AccountFactory(tenant=tenant, name=name, mrr=1200)
        place(account, stages[stage], days_ago=12)
        score(account, value, history=history, breakdown=BREAKDOWN, delta_30d=value - history[0])
        ContactFactory(account=account, name=f"{name.split()[0]} Champion", role="champion")
        accounts[name] = account
    return accounts


@pytest.fixture
def page(sign_in, alice, portfolio):
    """A signed-in browser page; the test body may still read the database between browser steps."""
    return sign_in(alice)


def test_filtering_the_portfolio_puts_the_filter_in_the_url(page):
    page.get_by_label("Stage", exact=True).select_option(label="Adoption")
    page.get_by_label("Health", exact=True).select_option(label="Red")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/t/alpha/?*stage=adoption*")
    assert "health=red" in page.url
    rows = page.locator("table.accounts tbody th[scope=row] a")
    assert rows.all_inner_texts() == ["Juniper Health"]
    page.screenshot(path=str(SCREENSHOTS / "portfolio-filtered.png"), full_page=True)


def test_a_filtered_portfolio_saved_as_a_view_opens_again_from_its_chip(page, live_server):
    page.get_by_label("Health", exact=True).select_option(label="Red")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/t/alpha/?*health=red*")
    page.locator("summary").filter(has_text="Save this view").click()
    page.get_by_label("Name", exact=True).fill("Accounts in the red")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("status").filter(has_text="Saved the view Accounts in the red.").wait_for()
    page.goto(f"{live_server.url}/t/alpha/")
    page.get_by_role("list", name="My saved views").get_by_role("link", name="Accounts in the red").click()
    page.wait_for_url("**/t/alpha/?*health=red*")
    assert page.locator("table.accounts tbody th[scope=row] a").all_inner_texts() == ["Juniper Health"]
    page.screenshot(path=str(SCREENSHOTS / "portfolio-saved-view.png"), full_page=False)


def test_the_filtered_portfolio_downloads_as_a_csv_file_of_its_rows(page):
    page.get_by_label("Stage", exact=True).select_option(label="Adoption")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/t/alpha/?*stage=adoption*")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()

    assert download.value.suggested_filename.startswith("alpha-accounts-")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert sorted((row["Account"], row["Stage"], row["Health"]) for row in rows) == [
        ("Cobalt Travel", "Adoption", "Green"), ("Juniper Health", "Adoption", "Red"),
    ]


def test_a_csm_filters_the_portfolio_by_a_segment_and_gets_back_to_it_from_an_account(page, tenant, alice, portfolio):
    segment_create(tenant=tenant, actor=alice, key="adopting", name="Adopting", criteria_text='stage == "adoption"')
    segments_refresh(tenant=tenant, account_ids=[account.pk for account in portfolio.values()])
    page.reload()

    page.get_by_label("Segment", exact=True).select_option(label="Adopting")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/t/alpha/?*segment=adopting*")
    rows = page.locator("table.accounts tbody th[scope=row] a")
    assert sorted(rows.all_inner_texts()) == ["Cobalt Travel", "Juniper Health"]

    rows.get_by_text("Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    page.locator(".facts").get_by_role("link", name="Adopting").click()
    page.wait_for_url("**/t/alpha/?segment=adopting")
    assert sorted(rows.all_inner_texts()) == ["Cobalt Travel", "Juniper Health"]


def test_the_account_activity_opens_from_the_account_page_and_filters_by_kind(page):
    page.get_by_role("link", name="Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    page.get_by_role("link", name="Activity timeline").click()
    page.wait_for_url("**/accounts/*/activity/")
    entries = page.locator("ol.activity > li")
    assert "Placed in Adoption" in entries.last.inner_text()
    assert any("Health turned Red" in text for text in entries.all_inner_texts())

    page.get_by_label("Stage moves").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/activity/?kind=stage")
    [only] = entries.all_inner_texts()
    assert "Placed in Adoption" in only
    page.screenshot(path=str(SCREENSHOTS / "account-activity.png"), full_page=True)


def test_a_contact_who_left_is_removed_from_the_account_page_and_the_activity_keeps_them(page):
    page.get_by_role("link", name="Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    page.get_by_text("Edit Juniper Champion").click()
    page.get_by_role("button", name="Remove Juniper Champion").click()
    page.wait_for_url("**/accounts/*/")
    assert "Removed Juniper Champion." in page.locator(".messages").inner_text()
    assert page.get_by_role("button", name="Remove Juniper Champion").count() == 0

    page.get_by_role("link", name="Activity timeline").click()
    page.get_by_label("Contact changes").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/activity/?kind=contact")
    [entry] = page.locator("ol.activity > li").all_inner_texts()
    assert "Removed the contact Juniper Champion" in entry and "Role: Champion" in entry


def test_account_page_shows_the_health_breakdown(page):
    page.get_by_role("link", name="Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    breakdown = page.locator("table.breakdown")
    assert "Logins in the last 30 days" in breakdown.inner_text()
    assert "Seats in use (%)" in breakdown.inner_text()
    assert "HEALTH Red 35" in " ".join(page.locator(".head-facts").inner_text().split())
    page.screenshot(path=str(SCREENSHOTS / "account.png"), full_page=True)


def test_moving_a_stage_with_a_reason_shows_it_in_the_timeline_in_place(page, portfolio):
    account = portfolio["Juniper Health"]
    page.get_by_role("link", name="Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    url = page.url
    lifecycle = page.locator("#lifecycle")
    lifecycle.get_by_label("Move to").select_option(label="Renewal")
    lifecycle.get_by_label("Reason").fill("Contract talks started early")
    lifecycle.get_by_role("button", name="Move stage").click()
    page.get_by_role("status").filter(has_text="Moved to Renewal.").wait_for()
    assert page.url == url  # htmx swapped the section; no page load
    assert "Adoption → Renewal" in page.locator(".timeline").inner_text()
    assert "Contract talks started early" in page.locator(".timeline").inner_text()
    assert page.locator("#account-stage").inner_text() == "Renewal"
    move = StageTransition.objects.for_tenant(account.tenant).get(account=account, kind=TransitionKind.MANUAL)
    assert move.reason == "Contract talks started early"
    page.screenshot(path=str(SCREENSHOTS / "account-moved.png"), full_page=True)


def test_a_note_added_on_the_account_page_shows_there_and_can_be_edited(page, portfolio):
    page.get_by_role("link", name="Juniper Health").click()
    page.wait_for_url("**/accounts/*/")
    notes = page.locator("#notes")
    notes.get_by_label("Add a note").fill("Call with Juniper Champion:\nthey want a training for new hires")
    notes.get_by_label("Pin to the top").check()
    notes.get_by_role("button", name="Add note").click()
    page.wait_for_url("**/accounts/*/#notes")
    note = page.locator("#notes .note").first
    assert "they want a training for new hires" in note.inner_text() and "Pinned" in note.inner_text()

    note.get_by_role("link", name="Edit this note").click()
    page.get_by_label("Note").fill("Training booked for Monday")
    page.get_by_role("button", name="Save note").click()
    page.wait_for_url("**/accounts/*/#note-*")
    assert "Training booked for Monday" in page.locator("#notes .note").first.inner_text()
    account = portfolio["Juniper Health"]
    assert list(account.notes.values_list("body", "pinned")) == [("Training booked for Monday", True)]
    page.screenshot(path=str(SCREENSHOTS / "account-notes.png"), full_page=True)


def test_an_admin_gives_the_checked_portfolio_rows_to_a_csm(bob, page, portfolio):
    page.get_by_label("Select Juniper Health").check()
    page.get_by_label("Select Maple Foods").check()
    page.get_by_label("Give the selected accounts to").select_option(label="Bob CSM")
    page.get_by_role("button", name="Assign").click()
    page.get_by_text("2 accounts given to Bob CSM.").wait_for()
    accounts = Account.objects.for_tenant(bob.memberships.get().tenant)
    owners = {name: accounts.get(pk=account.pk).owner for name, account in portfolio.items()}
    assert owners["Juniper Health"] == owners["Maple Foods"] == bob
    assert owners["Cobalt Travel"] != bob


def test_board_and_reports_render_at_a_narrow_width(page, live_server):
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(f"{live_server.url}/t/alpha/board/")
    assert page.locator("section.column").count() == len(STAGES)
    page.screenshot(path=str(SCREENSHOTS / "board-800.png"), full_page=True)
    page.goto(f"{live_server.url}/t/alpha/reports/")
    page.locator("canvas[data-drawn]").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "reports-800.png"), full_page=True)


# The page's width, and the tables whose last column is out of sight until their box is scrolled.
WIDTHS = """() => ({
    page: document.documentElement.scrollWidth,
    scrolled: [...document.querySelectorAll('.table-wrap')].filter(box => box.scrollWidth > box.clientWidth + 1)
        .map(box => box.querySelector('th').textContent.trim()),
})"""


@pytest.fixture
def every_page(tenant, alice, portfolio):
    """The paths of the main pages and of the settings pages with the most on them, each with something to show."""
    stage_create(tenant=tenant, actor=alice, key="adopting", name="Adopting")
    stage_create(tenant=tenant, actor=alice, key="churned", name="Churned", is_terminal=True)
    created, refused = starter_alerts_install(tenant=tenant)
    assert refused == {}
    account = portfolio["Juniper Health"]
    return [
        "/t/alpha/", "/t/alpha/board/", f"/t/alpha/accounts/{account.pk}/", "/t/alpha/alerts/", "/t/alpha/tasks/",
        "/t/alpha/reports/", "/t/alpha/settings/alert-rules/", "/t/alpha/settings/stages/new/",
        "/t/alpha/settings/playbooks/new/", "/t/alpha/settings/members/", "/t/alpha/settings/audit/",
    ]


def test_tables_show_their_last_column_at_1280_px_and_a_narrower_window_down_to_a_phone_scrolls_a_table_never_the_page(
    page, live_server, every_page
):
    for width in (1280, 800, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in every_page:
            page.goto(f"{live_server.url}{path}")
            page.evaluate("document.querySelectorAll('details').forEach(folded => folded.open = true)")
            widths = page.evaluate(WIDTHS)
            assert widths["page"] <= width, (width, path)
            if width == 1280:
                assert widths["scrolled"] == [], path
    page.screenshot(path=str(SCREENSHOTS / "stage-form-390.png"), full_page=True)


def test_the_pages_break_no_accessibility_rule_that_axe_checks(page, live_server, every_page):
    axe = Axe()
    for path in every_page:
        page.goto(f"{live_server.url}{path}")
        page.evaluate("document.querySelectorAll('details').forEach(folded => folded.open = true)")
        results = axe.run(page)
        assert results.violations_count == 0, f"{path}\n{results.generate_report()}"
