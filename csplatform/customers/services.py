from django.conf import settings
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.http import QueryDict
from django.utils import timezone
from django.utils.module_loading import import_string

from csplatform.sql import OneOf
from csplatform.tenancy.models import Role, User
from csplatform.tenancy.services import audit_actor_label

from .models import Account, AccountChange, AccountNote, Contact, ContactChange, DirtyAccount, SavedView


@transaction.atomic
def account_upsert(*, tenant, external_id, fields, actor=None):
    """Create or update the tenant's account with this external id.

    `fields` are already-validated model values; `attributes` are merged into
    the stored ones rather than replacing them, as CRMs send partial traits.
    Returns `(account, created)`. The account is marked for recompute, and
    what changed of an existing account is recorded as `actor`'s change.
    """
    fields = dict(fields)
    attributes = fields.pop("attributes", None)
    account = Account.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
    created = account is None
    if created:
        account = Account(tenant=tenant, external_id=external_id, name=fields.pop("name", None) or external_id)
    changes = {} if created else {account.pk: AccountChange.of(account, fields)}
    for name, value in fields.items():
        setattr(account, name, value)
    if attributes:
        account.attributes = {**account.attributes, **attributes}
    account.save()
    account_changes_record(tenant=tenant, changes=changes, actor=actor)
    account_mark_dirty(tenant=tenant, account_ids=[account.pk])
    return account, created


@transaction.atomic
def contact_upsert(*, tenant, external_id, account, fields, actor=None):
    """Create or update the tenant's contact with this external id under `account`.

    Returns `(contact, created)`; `attributes` merge as for accounts, and the
    contact's addition, or what changed of an existing one, is recorded as
    `actor`'s change.
    """
    fields = dict(fields)
    attributes = fields.pop("attributes", None)
    contact = Contact.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
    created = contact is None
    if created:
        contact = Contact(tenant=tenant, external_id=external_id)
    changes = [] if created else [(contact, ContactChange.of(contact, fields))]
    contact.account = account
    for name, value in fields.items():
        setattr(contact, name, value)
    if attributes:
        contact.attributes = {**contact.attributes, **attributes}
    contact.save()
    contact_changes_record(tenant=tenant, changes=changes, added=[contact] if created else [], actor=actor)
    account_mark_dirty(tenant=tenant, account_ids=[account.pk])
    return contact, created


# Batches look rows up in chunks: SQLite caps the parameters of one query.
LOOKUP_CHUNK = 1000
WRITE_BATCH = 500


def _changes_keep(tenant, model, changes, actor, at, hook):
    """Write `changes`, `[(the row's own fields, {field: [old, new]})]`, as `model` rows made by `actor` (a user,
    or None for the platform, which the activity names no one for), leaving out those that changed nothing.

    The webhooks that announce the changes sit above this app, so their `hook` is named in settings; it runs
    in this transaction, so a change is announced if and only if it is kept.
    """
    at = at or timezone.now()
    user = actor if getattr(actor, "pk", None) else None
    label = audit_actor_label(actor) if actor is not None else ""
    rows = [
        model(tenant=tenant, at=at, actor=user, actor_label=label, fields=fields, **own)
        for own, fields in changes
        if fields
    ]
    recorded = model.objects.bulk_create(rows, batch_size=WRITE_BATCH)
    if recorded and hook:
        import_string(hook)(tenant=tenant, change_ids=[row.pk for row in recorded])


def account_changes_record(*, tenant, changes, actor, at=None):
    """Keep `changes`, `{account id: {field: [old, new]}}`, as made by `actor`, and announce them
    (CSP_ACCOUNT_CHANGES_HOOK); an integration sending the same values again records nothing."""
    rows = [({"account_id": account_id}, fields) for account_id, fields in changes.items()]
    _changes_keep(tenant, AccountChange, rows, actor, at, settings.CSP_ACCOUNT_CHANGES_HOOK)


def contact_changes_record(*, tenant, actor, changes=(), added=(), removed=(), at=None):
    """Keep the addition of each new contact `added` (with what it was given), `changes`,
    `[(contact, {field: [old, new]})]`, and the removal of each contact `removed` (with what it had, before it is
    deleted), as made by `actor`, on each contact's account now, and announce them (CSP_CONTACT_CHANGES_HOOK)."""
    rows = [(_contact_change_of(contact, added=True), ContactChange.addition(contact)) for contact in added]
    rows += [(_contact_change_of(contact), fields) for contact, fields in changes]
    rows += [(_contact_change_of(contact, removed=True), ContactChange.removal(contact)) for contact in removed]
    _changes_keep(tenant, ContactChange, rows, actor, at, settings.CSP_CONTACT_CHANGES_HOOK)


def _contact_change_of(contact, **own):
    return {"contact": contact, "account_id": contact.account_id, "contact_name": str(contact), **own}


def rows_by_external_id(queryset, external_ids):
    """`{external_id: row}` for the given ids, a query per thousand ids."""
    external_ids = list(dict.fromkeys(external_ids))
    rows = {}
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = external_ids[start : start + LOOKUP_CHUNK]
        rows.update((row.external_id, row) for row in queryset.filter(external_id__in=chunk))
    return rows


def _apply_fields(obj, fields):
    """Set validated values on `obj`, merging `attributes`; returns the names that changed."""
    fields = dict(fields)
    attributes = fields.pop("attributes", None)
    for name, value in fields.items():
        setattr(obj, name, value)
    if attributes:
        obj.attributes = {**obj.attributes, **attributes}
        fields["attributes"] = obj.attributes
    return set(fields)


def _bulk_write(model, tenant, to_create, to_update, changed, now):
    model.objects.bulk_create(to_create, batch_size=WRITE_BATCH)
    if to_update:
        # bulk_update skips auto_now, so the update time is set here.
        for obj in to_update:
            obj.updated_at = now
        fields = sorted(changed | {"updated_at"})
        model.objects.for_tenant(tenant).bulk_update(to_update, fields, batch_size=WRITE_BATCH)


@transaction.atomic
def account_bulk_upsert(*, tenant, items, actor=None):
    """Upsert many accounts as `account_upsert` does one, in a fixed number of queries.

    `items` are validated field dicts, each with a distinct `external_id`.
    Returns `(created, updated)` counts.
    """
    now = timezone.now()
    existing = rows_by_external_id(
        Account.objects.for_tenant(tenant).select_for_update(), [item["external_id"] for item in items]
    )
    to_create, to_update, changed, changes = [], [], set(), {}
    for item in items:
        fields = dict(item)
        external_id = fields.pop("external_id")
        account = existing.get(external_id)
        if account is None:
            account = Account(tenant=tenant, external_id=external_id, name=fields.pop("name", None) or external_id)
            to_create.append(account)
        else:
            changes[account.pk] = AccountChange.of(account, fields)
            to_update.append(account)
        changed |= _apply_fields(account, fields)
    _bulk_write(Account, tenant, to_create, to_update, changed, now)
    account_changes_record(tenant=tenant, changes=changes, actor=actor, at=now)
    account_mark_dirty(tenant=tenant, account_ids=[account.pk for account in to_create + to_update], now=now)
    return len(to_create), len(to_update)


@transaction.atomic
def contact_bulk_upsert(*, tenant, items, actor=None):
    """Upsert many contacts as `contact_upsert` does one, in a fixed number of queries.

    `items` are validated field dicts, each with a distinct `external_id`;
    `account` (an Account) is required for contacts that do not exist yet.
    The accounts a contact joins or leaves are marked for recompute.
    Returns `(created, updated)` counts.
    """
    now = timezone.now()
    existing = rows_by_external_id(
        Contact.objects.for_tenant(tenant).select_for_update(), [item["external_id"] for item in items]
    )
    to_create, to_update, changed, touched, changes = [], [], set(), set(), []
    for item in items:
        fields = dict(item)
        external_id = fields.pop("external_id")
        contact = existing.get(external_id)
        if contact is None:
            contact = Contact(tenant=tenant, external_id=external_id, account=fields.pop("account"))
            to_create.append(contact)
        else:
            touched.add(contact.account_id)
            to_update.append(contact)
            changes.append((contact, ContactChange.of(contact, fields)))
        changed |= _apply_fields(contact, fields)
        touched.add(contact.account_id)
    _bulk_write(Contact, tenant, to_create, to_update, changed, now)
    contact_changes_record(tenant=tenant, changes=changes, added=to_create, actor=actor, at=now)
    account_mark_dirty(tenant=tenant, account_ids=touched, now=now)
    return len(to_create), len(to_update)


def account_mark_dirty(*, tenant, account_ids, now=None):
    """Queue these accounts for the pipeline's next recompute, and ask for one."""
    now = now or timezone.now()
    account_ids = list(account_ids)
    for start in range(0, len(account_ids), LOOKUP_CHUNK):
        chunk = account_ids[start : start + LOOKUP_CHUNK]
        dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant).filter(OneOf("pk", chunk)), now=now)
    accounts_changed(tenant)


def dirty_marks_set(*, tenant, accounts, now=None):
    """Mark every account of the `accounts` queryset dirty in one statement; returns how many.

    INSERT … SELECT … ON CONFLICT: an account already marked keeps the later
    of the two times, so a mark never moves back, and the moment its mark was
    first set (`waiting_since`). Selecting from the tenant's
    accounts rather than taking ids on trust means another tenant's id marks nothing.
    Rows go in account order, the order in which the pipeline clears marks, so
    the two lock the same marks in the same order and cannot deadlock.
    """
    now = connection.ops.adapt_datetimefield_value(now or timezone.now())
    marked = (
        accounts.filter(tenant_id=tenant.pk).order_by("pk").values(marked_tenant=F("tenant_id"), marked_account=F("pk"))
    )
    try:
        marked_sql, marked_params = marked.query.sql_with_params()
    except EmptyResultSet:  # Django does not compile a filter that can match nothing, such as `pk__in=[]`.
        return 0
    table = connection.ops.quote_name(DirtyAccount._meta.db_table)
    later = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, account_id, dirty_at, waiting_since) "
            f"SELECT marked.marked_tenant, marked.marked_account, %s, %s FROM ({marked_sql}) marked WHERE true "
            f"ON CONFLICT (tenant_id, account_id) DO UPDATE SET dirty_at = {later}({table}.dirty_at, excluded.dirty_at)",
            [now, now, *marked_params],
        )
        return cursor.rowcount


@transaction.atomic
def dirty_marks_clear(*, tenant, account_ids, read_at):
    """Clear the marks of these accounts unless set after `read_at`: a later change needs another recompute.

    The marks are locked in account order before they go (see dirty_marks_set); a
    mark that ingest moved past `read_at` meanwhile no longer matches, and stays.
    """
    marks = DirtyAccount.objects.for_tenant(tenant)
    cleared = (
        marks.filter(OneOf("account_id", account_ids), dirty_at__lte=read_at).order_by("account_id").select_for_update()
    )
    marks.filter(OneOf("account_id", list(cleared.values_list("account_id", flat=True)))).delete()


def accounts_changed(tenant):
    """Tell the pipeline, once the transaction commits, that the tenant has dirty accounts.

    The hook is named in settings (CSP_ACCOUNTS_CHANGED_HOOK) because the
    pipeline sits above this app; the dirty marks alone are enough for the
    minute sweep, the hook only makes the recompute start within seconds.
    """
    if settings.CSP_ACCOUNTS_CHANGED_HOOK:
        hook = import_string(settings.CSP_ACCOUNTS_CHANGED_HOOK)
        transaction.on_commit(lambda: hook(tenant.pk))


@transaction.atomic
def account_create(*, tenant, fields):
    account = Account.objects.create(tenant=tenant, **fields)
    dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant).filter(pk=account.pk))
    return account


@transaction.atomic
def account_update(*, tenant, account, fields, actor=None):
    """Set the given fields, recorded as `actor`'s change; `attributes`, when given, replaces the stored object.

    What changed is read against the stored row, as a form may have set its values on `account` already.
    """
    stored = Account.objects.for_tenant(tenant).select_for_update().get(pk=account.pk)
    changes = {account.pk: AccountChange.of(stored, fields)}
    for name, value in fields.items():
        setattr(account, name, value)
    account.save()
    account_changes_record(tenant=tenant, changes=changes, actor=actor)
    dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant).filter(pk=account.pk))
    return account


@transaction.atomic
def accounts_assign_owner(*, tenant, account_ids, owner, actor=None):
    """Give these accounts of the tenant to `owner`, a member (None leaves them unassigned), as `actor`.

    Returns how many changed hands; the owner is in the criteria language, so those are marked dirty.
    """
    if owner is not None and not User.objects.members_of(tenant).filter(pk=owner.pk).exists():
        raise ValidationError({"owner": "Choose a member of this team."})
    accounts = Account.objects.for_tenant(tenant).filter(OneOf("pk", list(account_ids)))
    moving = accounts.exclude(owner__isnull=True) if owner is None else accounts.exclude(owner=owner)
    previous_owners = dict(moving.select_for_update().values_list("pk", "owner_id"))
    if not previous_owners:
        return 0
    now = timezone.now()
    ids = list(previous_owners)
    Account.objects.for_tenant(tenant).filter(OneOf("pk", ids)).update(owner=owner, updated_at=now)
    new_owner = owner.pk if owner else None
    changes = {pk: {"owner": [old, new_owner]} for pk, old in previous_owners.items()}
    account_changes_record(tenant=tenant, changes=changes, actor=actor, at=now)
    account_mark_dirty(tenant=tenant, account_ids=ids)
    return len(ids)


@transaction.atomic
def contact_create(*, tenant, fields, actor=None):
    """Create the contact, keeping its addition by `actor`, with what it was given, in its account's story."""
    contact = Contact.objects.create(tenant=tenant, **fields)
    contact_changes_record(tenant=tenant, added=[contact], actor=actor)
    account_mark_dirty(tenant=tenant, account_ids=[contact.account_id])
    return contact


@transaction.atomic
def contact_update(*, tenant, contact, fields, actor=None):
    """Set the given fields, recorded as `actor`'s change; a contact moved to another account touches both
    accounts.

    What changed is read against the stored row, as a form may have set its values on `contact` already.
    """
    stored = Contact.objects.for_tenant(tenant).select_for_update().get(pk=contact.pk)
    previous_account_id = stored.account_id
    changes = [(contact, ContactChange.of(stored, fields))]
    for name, value in fields.items():
        setattr(contact, name, value)
    contact.save()
    contact_changes_record(tenant=tenant, changes=changes, actor=actor)
    account_mark_dirty(tenant=tenant, account_ids={previous_account_id, contact.account_id})
    return contact


@transaction.atomic
def contact_delete(*, tenant, contact, actor=None):
    """Delete the contact, keeping its removal by `actor`, with what it had, in its account's story beside its
    earlier changes, and announcing it (CSP_CONTACT_CHANGES_HOOK)."""
    account_id = contact.account_id
    contact_changes_record(tenant=tenant, removed=[contact], actor=actor)
    contact.delete()
    account_mark_dirty(tenant=tenant, account_ids=[account_id])


# Notes


def note_editable_by(note, *, user, role):
    """Whoever wrote a note may change it; admins may change anyone's."""
    return role == Role.ADMIN or note.author_id == user.pk


def note_add(*, tenant, account, author, body, pinned=False, key=None):
    """Add a note; with a `key`, the note already added under it is returned instead of a second one."""
    now = timezone.now()
    fields = {"tenant": tenant, "account": account, "author": author, "body": body, "pinned": pinned}
    fields.update(created_at=now, updated_at=now)
    if key is None:
        return AccountNote.objects.create(**fields)
    note, _ = AccountNote.objects.for_tenant(tenant).get_or_create(key=key, defaults=fields)
    return note


def note_update(*, tenant, note, **changes):
    """Change a note's `body` or `pinned`."""
    for name, value in changes.items():
        setattr(note, name, value)
    note.updated_at = timezone.now()
    note.save(update_fields=[*changes, "updated_at"])
    return note


def note_delete(*, tenant, note):
    AccountNote.objects.for_tenant(tenant).filter(pk=note.pk).delete()


def saved_view_save(*, tenant, user, name, query):
    """Save a member's portfolio view under `name`: `query` is the page's query string (its page number is
    dropped). A view of the same name is replaced. Returns `(view, created)`."""
    query = SavedView.query_of(QueryDict(query))
    if len(query) > SavedView.MAX_QUERY_LENGTH:
        raise ValidationError({"query": "These filters are too long to save as a view."})
    views = SavedView.objects.for_tenant(tenant).filter(user=user)
    if not views.filter(name=name).exists() and views.count() >= SavedView.MAX_PER_MEMBER:
        raise ValidationError({"name": f"Keep at most {SavedView.MAX_PER_MEMBER} views: delete one first."})
    return views.update_or_create(
        user=user, name=name, defaults={"query": query}, create_defaults={"tenant": tenant, "query": query}
    )


def saved_view_delete(*, tenant, view):
    SavedView.objects.for_tenant(tenant).filter(pk=view.pk).delete()
