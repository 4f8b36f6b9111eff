"""The portfolio as a CSV file: the rows a CSM filtered, for a spreadsheet, a QBR deck or a CRM import."""

from csplatform.spreadsheets import as_text, line_writer
from csplatform.sql import OneOf
from csplatform.tenancy.rls import tenant_context

from .models import Colour

# Rows read per query: the file streams in constant memory whatever the portfolio's size.
CSV_CHUNK = 5000
COLOUR_NAMES = dict(Colour.choices)


def number(value, places):
    return "" if value is None else f"{value:.{places}f}"


def portfolio_csv_header(zone):
    return [
        "Account",
        "External ID",
        "Domain",
        "Plan",
        "Stage",
        "Days in stage",
        "Health",
        "Health score",
        "Health change, 30 days",
        "MRR",
        "Currency",
        "Renewal date",
        "Trial ends",
        "Owner",
        "Owner email",
        f"Last activity ({zone})",
        "Link",
    ]


# What a row reads: plain values rather than model instances, which would cost more than the file's formatting.
ROW_FIELDS = (
    "pk", "name", "external_id", "domain", "plan", "lifecycle__stage__key", "lifecycle__stage__name", "days_in_stage",
    "health__colour", "health__score", "health__delta_30d", "mrr", "currency", "renewal_date", "trial_ends_at",
    "owner__name", "owner__email", "last_activity",
)


def portfolio_rows(accounts, ids):
    """The rows (ROW_FIELDS) of the portfolio's `accounts` with these ids, in their order; one query. An account
    deleted since the ids were read is left out."""
    rows = {row["pk"]: row for row in accounts.filter(OneOf("pk", ids)).values(*ROW_FIELDS)}
    return [rows[pk] for pk in ids if pk in rows]


def portfolio_csv_row(row, zone, link):
    """One account as the portfolio row shows it; dates and times in `zone`."""
    trial_ends_at, last_activity = row["trial_ends_at"], row["last_activity"]
    return [
        as_text(row["name"]),
        as_text(row["external_id"]),
        as_text(row["domain"]),
        as_text(row["plan"]),
        as_text(row["lifecycle__stage__name"] or ""),
        "" if row["days_in_stage"] is None else row["days_in_stage"],
        COLOUR_NAMES.get(row["health__colour"], "Not scored"),
        number(row["health__score"], 0),
        number(row["health__delta_30d"], 1),
        number(row["mrr"], 2),
        row["currency"],
        row["renewal_date"].isoformat() if row["renewal_date"] else "",
        trial_ends_at.astimezone(zone).date().isoformat() if trial_ends_at else "",
        as_text(row["owner__name"] or row["owner__email"] or ""),
        as_text(row["owner__email"] or ""),
        f"{last_activity.astimezone(zone):%Y-%m-%d %H:%M}" if last_activity else "",
        link(row["pk"]),
    ]


def portfolio_csv_lines(tenant, accounts, ids, link, zone):
    """Yield the CSV file of `accounts` whose ids are `ids`, in that order, a chunk of rows at a time.

    `accounts` is the portfolio's queryset (owner, health, stage, days in
    stage, last activity); `link(pk)` gives an account page's address; times
    are in `zone`, the reader's. It opens with a byte order mark, which Excel
    needs to read UTF-8. A streamed response runs this after the view has
    returned, so it sets the tenant itself.
    """
    writer = line_writer()
    yield "\ufeff" + writer.writerow(portfolio_csv_header(zone))
    with tenant_context(tenant):
        for start in range(0, len(ids), CSV_CHUNK):
            rows = portfolio_rows(accounts, ids[start : start + CSV_CHUNK])
            yield "".join(writer.writerow(portfolio_csv_row(row, zone, link)) for row in rows)
