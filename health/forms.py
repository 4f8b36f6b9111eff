from django import forms
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.tenancy.timezones import local_day_start

from .models import Colour


class HealthOverrideForm(forms.Form):
    """A CSM's own judgement of an account's health: a score, a colour or both, with the reason."""

    prefix = "override"
    score = forms.FloatField(label="Score (0–100)", required=False, min_value=0, max_value=100)
    colour = forms.ChoiceField(label="Colour", required=False, choices=[("", "From the score"), *Colour.choices])
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    expires_on = forms.DateField(
        label="Until (optional)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        # The reader's today: the page reads the day they pick in their own time zone.
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError("Pick a day after today.")
        return day

    def clean(self):
        data = super().clean()
        if data.get("score") is None and not data.get("colour") and not self.errors:
            raise forms.ValidationError("Give a score, a colour or both.")
        return data

    def expires_at(self):
        """The override ends at the start of the chosen day in the page's time zone."""
        day = self.cleaned_data["expires_on"]
        return None if day is None else local_day_start(day)


class ReportScopeForm(forms.Form):
    """Whose accounts the reports count: everyone's (blank), a member's, or those with no owner."""

    NO_OWNER = "none"

    owner = forms.ChoiceField(label="Accounts of", required=False)

    def __init__(self, *args, members, me, **kwargs):
        super().__init__(*args, **kwargs)
        others = [(str(user.pk), user.name or user.email) for user in members if user.pk != me.pk]
        self.fields["owner"].choices = [("", "Everyone"), (str(me.pk), "Me"), *others, (self.NO_OWNER, "No owner")]

    def accounts(self, tenant):
        """The tenant's accounts the reports count, or None for all of them (also when the choice is not valid)."""
        if not self.is_valid() or not self.cleaned_data["owner"]:
            return None
        owner = self.cleaned_data["owner"]
        owned = Account.objects.for_tenant(tenant)
        return owned.filter(owner__isnull=True) if owner == self.NO_OWNER else owned.filter(owner_id=int(owner))
