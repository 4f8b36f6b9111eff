from django import forms
from django.core import signing
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from csplatform.customers.ingest import events_ingest
from csplatform.customers.models import Contact
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context

from .nps import nps_token_read


class CommentForm(forms.Form):
    comment = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 4}), required=True)


def _record(tenant, contact, payload, event, properties, suffix):
    events_ingest(
        tenant=tenant,
        events=[
            {
                "message_id": f"nps:{payload['r']}:{contact.pk}{suffix}",
                "account_id": contact.account_id,
                "contact_id": contact.pk,
                "event": event,
                "timestamp": timezone.now(),
                "properties": properties,
            }
        ],
    )


@require_http_methods(["GET", "POST"])
def nps_answer(request, token):
    """The one-click answer: the first click records the score, a second form takes an optional comment.

    Public: the signed token is the credential. A survey answers once per
    contact (the event's message id), so clicking again changes nothing.
    """
    try:
        payload = nps_token_read(token)
    except signing.SignatureExpired:
        return render(request, "playbooks/nps_answer.html", {"expired": True}, status=410)
    except signing.BadSignature as exc:
        raise Http404("Unknown survey link.") from exc
    tenant = Tenant.objects.filter(pk=payload["t"]).first()
    if tenant is None:
        raise Http404("Unknown survey link.")
    # No session names the tenant here, the token does: its rows are reachable only inside its RLS context.
    with tenant_context(tenant):
        return _answer(request, tenant, payload)


def _answer(request, tenant, payload):
    """Record the score, and the comment when one is posted, for the token's contact."""
    contact = Contact.objects.for_tenant(tenant).filter(pk=payload["c"]).first()
    if contact is None:
        raise Http404("Unknown survey link.")
    _record(tenant, contact, payload, "nps.answered", {"score": payload["s"]}, "")
    form = CommentForm(request.POST or None)
    thanked = False
    if request.method == "POST" and form.is_valid():
        _record(
            tenant,
            contact,
            payload,
            "nps.commented",
            {"score": payload["s"], "comment": form.cleaned_data["comment"]},
            ":comment",
        )
        thanked = True
    return render(
        request,
        "playbooks/nps_answer.html",
        {"score": payload["s"], "form": form, "thanked": thanked, "tenant": tenant},
    )
