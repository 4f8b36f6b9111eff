"""Business hours and demo slots: pure functions over aware datetimes."""

import datetime as dt
import zoneinfo

from csplatform.tenancy.timezones import member_zone, tenant_zone

DEFAULT_HOURS = (9, 17)
WORKDAYS = frozenset(range(5))  # Monday to Friday


def zone_of(tenant, contact=None):
    """The contact's own time zone when it has a valid `timezone` attribute, else the tenant's."""
    name = (contact.attributes or {}).get("timezone") if contact is not None else None
    if isinstance(name, str) and name in zoneinfo.available_timezones():
        return zoneinfo.ZoneInfo(name)
    return zoneinfo.ZoneInfo(tenant.timezone)


def next_business_time(moment, zone, hours=DEFAULT_HOURS):
    """`moment` itself inside working hours, else the start of the next working day's hours."""
    local = moment.astimezone(zone)
    start, end = hours
    if local.weekday() in WORKDAYS and start <= local.hour < end:
        return moment
    day = local.date()
    if local.weekday() not in WORKDAYS or local.hour >= end:
        day += dt.timedelta(days=1)
    while day.weekday() not in WORKDAYS:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(start), tzinfo=zone).astimezone(dt.UTC)


def working_hours(tenant, membership=None):
    """`(zone, (start, end hour), weekdays)` a member works in; else 9 to 17, Monday to Friday.

    A member without a time zone of their own works in the tenant's.
    """
    if membership is None:
        return tenant_zone(tenant), DEFAULT_HOURS, WORKDAYS
    hours = (membership.work_start_hour, membership.work_end_hour)
    return member_zone(tenant, membership), hours, frozenset(membership.work_days)


def demo_slot(*, now, zone, days_ahead, duration_minutes, busy=(), hours=DEFAULT_HOURS, workdays=WORKDAYS):
    """The first free slot of `duration_minutes` on the working day `days_ahead` days from now.

    Slots start on the hour from the start of working hours; `busy` is a list
    of (start, end) intervals of the CSM that a slot may not overlap. A day
    without room moves to the next working day.
    """
    start_hour, end_hour = hours
    day = now.astimezone(zone).date() + dt.timedelta(days=days_ahead)
    duration = dt.timedelta(minutes=duration_minutes)
    for _ in range(30):
        while day.weekday() not in workdays:
            day += dt.timedelta(days=1)
        # An end hour of 24 is midnight, which dt.time cannot hold.
        day_end = dt.datetime.combine(day, dt.time(), tzinfo=zone) + dt.timedelta(hours=end_hour)
        for hour in range(start_hour, end_hour):
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=zone)
            end = start + duration
            if end > day_end or start <= now:
                continue
            if all(end <= b_start or start >= b_end for b_start, b_end in busy):
                return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    raise ValueError("No free slot in the next 30 working days.")
