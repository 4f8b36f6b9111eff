import datetime as dt
import zoneinfo

from django.db.models import DateField
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone
from django.utils.dateformat import format as date_format


def tenant_zone(tenant):
    return zoneinfo.ZoneInfo(tenant.timezone)


def member_zone(tenant, membership):
    """Where a member works: their own time zone, else the tenant's. Their pages and digest speak in it."""
    return zoneinfo.ZoneInfo(membership.timezone or tenant.timezone)


def tenant_today(tenant):
    """Today's date where the tenant works; "renews within 30 days" counts from here."""
    return timezone.localdate(timezone=tenant_zone(tenant))


def tenant_day(tenant, field_name):
    """The day of a stored time where the tenant works, as an expression the database computes for every row."""
    return TruncDate(field_name, tzinfo=tenant_zone(tenant))


def day_start(tenant, day):
    """Midnight of `day` in the tenant's zone, as an aware datetime."""
    return local_day_start(day, tenant_zone(tenant))


def local_day_start(day, zone=None):
    """Midnight of `day` in `zone`, else in the active time zone (a page's: its reader's), as an aware datetime."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone or timezone.get_current_timezone())


def day_text(day):
    """A day as the pages write it: "Nov 30, 2026"."""
    return date_format(day, "M j, Y")


def month_starts(today, count):
    """The first days of the `count` months that end with today's, oldest first."""
    firsts = [today.replace(day=1)]
    while len(firsts) < count:
        firsts.insert(0, (firsts[0] - dt.timedelta(days=1)).replace(day=1))
    return firsts


def by_month(tenant, rows, **aggregates):
    """`{first day of a month: row}` of the `aggregates` of `rows` by the month of their `at` in the tenant's zone."""
    in_months = rows.annotate(month=TruncMonth("at", tzinfo=tenant_zone(tenant), output_field=DateField()))
    return {row["month"]: row for row in in_months.values("month").annotate(**aggregates).order_by()}
