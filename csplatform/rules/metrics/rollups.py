"""The grouped queries over the daily rollups: one query per metric family and chunk of accounts."""

import datetime as dt

from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum, Window
from django.db.models.functions import RowNumber

from csplatform.customers.models import Account, DailyPropertyRollup, DailyRollup, DailyValueRollup
from csplatform.sql import OneOf, plain_rows

from ..models import Aggregation
from .specs import lookback_start, window_start

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _events_q(spec):
    return Q() if spec.event_names is None else Q(event__in=spec.event_names)


def _window_q(spec, today):
    return Q(day__gte=window_start(today, spec.window_days)) & _events_q(spec)


def _previous_window_q(spec, today):
    return Q(day__gte=lookback_start(spec, today), day__lt=window_start(today, spec.window_days)) & _events_q(spec)


def _rollup_aggregates(spec, today):
    """The conditional aggregates one spec needs from DailyRollup, by name suffix."""
    q = _window_q(spec, today)
    if spec.aggregation == Aggregation.COUNT:
        return {"": Sum("count", filter=q)}
    if spec.aggregation == Aggregation.ACTIVE_DAYS:
        return {"": Count("day", distinct=True, filter=q)}
    if spec.aggregation == Aggregation.TREND:
        return {"": Sum("count", filter=q), "_before": Sum("count", filter=_previous_window_q(spec, today))}
    return {"": Count("contact_ref", distinct=True, filter=q & Q(contact_ref__gt=0))}


# The sums one (account, contact) group adds to an account's value, by aggregation: their name suffixes.
_SHARE_SUFFIXES = {
    Aggregation.COUNT: ("",),
    Aggregation.TREND: ("", "_before"),
    Aggregation.DISTINCT_CONTACTS: ("",),
}


def _contact_share_aggregates(spec, today):
    """The aggregates of one (account, contact) group whose shares add up to an account spec's value."""
    if spec.aggregation == Aggregation.DISTINCT_CONTACTS:
        # Rows all have count > 0, so any row of a contact in the window makes it active.
        return {"": Count("day", filter=_window_q(spec, today) & Q(contact_ref__gt=0))}
    return _rollup_aggregates(spec, today)


def trend_percent(current, before):
    """The change from `before` to `current` in percent, one decimal; unknown when there was nothing before."""
    if not before:
        return None
    return round((current - before) * 100 / before, 1)


def _columns(specs, prefix):
    """`(key, aggregate, aggregate of the window before)` of each spec, the aggregates named by `prefix`
    and the spec's place; only a trend has a window before."""
    return [
        (spec.key, f"{prefix}{i}", f"{prefix}{i}_before" if spec.aggregation == Aggregation.TREND else None)
        for i, spec in enumerate(specs)
    ]


def _values(columns, row):
    """`{key: value}` of one row of aggregates, for `columns` as `_columns` gives them (or their indexes).

    A count is its aggregate, zero when there was none; a trend compares its
    window with the one before. Called for every row of a chunk, hence one
    comprehension rather than a call per value.
    """
    return {
        key: row[current] or 0 if before is None else trend_percent(row[current] or 0, row[before] or 0)
        for key, current, before in columns
    }


def _as_date(value):
    # SQLite returns dates as ISO text.
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _recency(row):
    return (row["day"], row["latest_at"] or EPOCH)


class Rollups:
    """The grouped rollup queries of one chunk; `group` names the columns a row is keyed by."""

    def __init__(self, tenant, account_ids, today):
        self.tenant = tenant
        self.account_ids = account_ids
        self.today = today

    def _start(self, specs):
        """The first day any of these specs reads."""
        return min(lookback_start(spec, self.today) for spec in specs)

    def _base(self, model, group, start):
        return (
            model.objects.for_tenant(self.tenant)
            .filter(OneOf("account_id", self.account_ids), day__gte=start, day__lte=self.today)
            .values(*group)
            .order_by()
        )

    @staticmethod
    def _keyed(rows, group):
        return {tuple(row[name] for name in group): row for row in rows}

    def events(self, group, specs):
        """One query: every count / active_days / distinct_contacts / trend spec as conditional aggregates."""
        if not specs:
            return {}
        aggregates = {
            f"m{i}{suffix}": aggregate
            for i, spec in enumerate(specs)
            for suffix, aggregate in _rollup_aggregates(spec, self.today).items()
        }
        rows = self._base(DailyRollup, group, self._start(specs)).filter(count__gt=0).annotate(**aggregates)
        columns = _columns(specs, "m")
        return {key: _values(columns, row) for key, row in self._keyed(rows, group).items()}

    def distinct_values(self, specs):
        """One query: the number of distinct values of each spec's text property over its window."""
        if not specs:
            return {}
        aggregates = {
            f"v{i}": Count("value", distinct=True, filter=_window_q(spec, self.today) & Q(prop=spec.property))
            for i, spec in enumerate(specs)
        }
        rows = self._base(DailyValueRollup, ["account_id"], self._start(specs)).annotate(**aggregates)
        return {
            account_id: {spec.key: row[f"v{i}"] for i, spec in enumerate(specs)}
            for (account_id,), row in self._keyed(rows, ["account_id"]).items()
        }

    def activity(self, account_specs, contact_specs):
        """One query over DailyRollup grouped by account and contact, read once for four answers:
        `(account values, contact values, contact last days, account last days)`.

        Counts, trends and distinct contacts of an account are sums over its
        contacts' groups (contact 0 holds events without a contact), so they
        are folded here from the same rows as the contacts' own values and the
        last day with any event, keyed by `(account_id, contact_ref)` and by
        account. Active days of an account are not a sum over its contacts:
        those specs go to `events` by account.

        Only the days the specs read are read, so the query costs the same
        however long the history: a contact quiet through all of them has no
        last day here, and the accounts quiet through all of them have theirs
        looked up in one more query, one index entry each.
        """
        start = self._start([*account_specs, *contact_specs])
        aggregates = {"last_day": Max("day")}
        for i, spec in enumerate(account_specs):
            for suffix, aggregate in _contact_share_aggregates(spec, self.today).items():
                aggregates[f"a{i}{suffix}"] = aggregate
        for i, spec in enumerate(contact_specs):
            for suffix, aggregate in _rollup_aggregates(spec, self.today).items():
                aggregates[f"c{i}{suffix}"] = aggregate
        rows = plain_rows(
            self._base(DailyRollup, ["account_id", "contact_ref"], start).filter(count__gt=0).annotate(**aggregates)
        )
        # Rows are (account_id, contact_ref, *aggregates) in the order the aggregates were named.
        column = {name: index for index, name in enumerate(aggregates, start=2)}
        last_day = column["last_day"]
        # (name, column, counts a contact): a group adds its count to a sum, or 1 for a contact active in the window.
        shares = [
            (f"a{i}{suffix}", column[f"a{i}{suffix}"], spec.aggregation == Aggregation.DISTINCT_CONTACTS)
            for i, spec in enumerate(account_specs)
            for suffix in _SHARE_SUFFIXES[spec.aggregation]
        ]
        contact_columns = [
            (key, column[current], None if before is None else column[before])
            for key, current, before in _columns(contact_specs, "c")
        ]
        account_columns = _columns(account_specs, "a")
        contact_values, last_days, account_last_days, rows_by_account = {}, {}, {}, {}
        for row in rows:
            key = (row[0], row[1])
            last_days[key] = day = _as_date(row[last_day])
            account_last_days[row[0]] = max(day, account_last_days.get(row[0], day))
            contact_values[key] = _values(contact_columns, row)
            rows_by_account.setdefault(row[0], []).append(row)
        account_values = {}
        for account_id, account_rows in rows_by_account.items():
            columns = list(zip(*account_rows))
            totals = {}
            for name, index, counts_contact in shares:
                shares_of_contacts = columns[index]
                if counts_contact:
                    totals[name] = len(shares_of_contacts) - shares_of_contacts.count(0)
                else:
                    totals[name] = sum(filter(None, shares_of_contacts))
            account_values[account_id] = _values(account_columns, totals)
        quiet = [account_id for account_id in self.account_ids if account_id not in account_last_days]
        account_last_days.update(self._last_days_before(quiet, start))
        return account_values, contact_values, last_days, account_last_days

    def _last_days_before(self, account_ids, day):
        """`{account id: last day}`: each account's last day with an event before `day`, for those that have one.

        One query reading one index entry per account (the newest row of the
        account's range of the rollup key before `day`), however long ago.
        """
        if not account_ids:
            return {}
        newest = (
            DailyRollup.objects.for_tenant(self.tenant)
            .filter(account_id=OuterRef("pk"), day__lt=day, count__gt=0)
            .order_by("-day")
            .values("day")[:1]
        )
        rows = (
            Account.objects.for_tenant(self.tenant)
            .filter(OneOf("pk", account_ids))
            .annotate(last_day=Subquery(newest))
            .values_list("pk", "last_day")
        )
        # Filtering the None out in SQL would run the subquery a second time per account.
        return {account_id: day for account_id, day in rows if day is not None}

    def property_totals(self, specs):
        """One query: sum and count of the property for every sum / average spec."""
        if not specs:
            return {}
        aggregates = {}
        for i, spec in enumerate(specs):
            q = _window_q(spec, self.today) & Q(prop=spec.property)
            aggregates[f"t{i}"] = Sum("total", filter=q)
            aggregates[f"n{i}"] = Sum("count", filter=q)
        rows = self._base(DailyPropertyRollup, ["account_id"], self._start(specs)).annotate(**aggregates)
        values = {}
        for (account_id,), row in self._keyed(rows, ["account_id"]).items():
            values[account_id] = {}
            for i, spec in enumerate(specs):
                total, count = row[f"t{i}"] or 0.0, row[f"n{i}"] or 0
                if spec.aggregation == Aggregation.SUM:
                    values[account_id][spec.key] = float(total)
                else:
                    values[account_id][spec.key] = total / count if count else None
        return values

    def property_latest(self, specs):
        """One query: the newest value of each (event, property) pair per account, then per spec the
        newest of its events' values that falls inside its window."""
        if not specs:
            return {}
        pairs = Q()
        for spec in specs:
            pairs |= Q(event__in=spec.event_names, prop=spec.property)
        newest_first = Window(
            RowNumber(),
            partition_by=[F("account_id"), F("event"), F("prop")],
            order_by=[F("day").desc(), F("latest_at").desc(nulls_last=True)],
        )
        rows = (
            self._base(
                DailyPropertyRollup,
                ["account_id", "event", "prop", "day", "latest_at", "latest_value"],
                self._start(specs),
            )
            .filter(pairs, latest_value__isnull=False)
            .annotate(rank=newest_first)
            .filter(rank=1)
        )
        chosen = {}
        # At most one row per (account, event, property): the newest value of that pair.
        for row in rows:
            for spec in specs:
                if row["event"] not in spec.event_names or row["prop"] != spec.property:
                    continue
                if row["day"] < window_start(self.today, spec.window_days):
                    continue
                best = chosen.get((row["account_id"], spec.key))
                if best is None or _recency(row) > _recency(best):
                    chosen[row["account_id"], spec.key] = row
        values = {}
        for (account_id, key), row in chosen.items():
            values.setdefault(account_id, {})[key] = row["latest_value"]
        return values
