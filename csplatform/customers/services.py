from django.db import transaction
from django.utils import timezone

from .models import Account, Contact


@transaction.atomic
def account_upsert(*, tenant, external_id, fields):
    """Create or update the tenant's account with this external id.

    `fields` are already-validated model values; `attributes` are merged into
    the stored ones rather than replacing them, as CRMs send partial traits.
    Returns `(account, created)`. The account is marked for recompute.
    """
    fields = dict(fields)
    attributes = fields.pop("attributes", None)
    account = Account.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
    created = account is None
    if created:
        account = Account(tenant=tenant, external_id=external_id, name=fields.pop("name", None) or external_id)
    for name, value in fields.items():
        setattr(account, name, value)
    if attributes:
        account.attributes = {**account.attributes, **attributes}
    account.dirty_at = timezone.now()
    account.save()
    return account, created


@transaction.atomic
def contact_upsert(*, tenant, external_id, account, fields):
    """Create or update the tenant's contact with this external id under `account`.

    Returns `(contact, created)`; `attributes` merge as for accounts.
    """
    fields = dict(fields)
    attributes = fields.pop("attributes", None)
    contact = Contact.objects.for_tenant(tenant).select_for_update().filter(external_id=external_id).first()
    created = contact is None
    if created:
        contact = Contact(tenant=tenant, external_id=external_id)
    contact.account = account
    for name, value in fields.items():
        setattr(contact, name, value)
    if attributes:
        contact.attributes = {**contact.attributes, **attributes}
    contact.save()
    Account.objects.for_tenant(tenant).filter(pk=account.pk).update(dirty_at=timezone.now())
    return contact, created
