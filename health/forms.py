import datetime as dt

from django import forms
from django.utils import timezone

from csplatform.tenancy.timezones import tenant_zone

from .models import Colour


class HealthOverrideForm(forms.Form):
    """A CSM's own judgement of an account's health: a score, a colour or both, with the reason."""

    score = forms.FloatField(label="Score (0–100)", required=False, min_value=0, max_value=100)
    colour = forms.ChoiceField(label="Colour", required=False, choices=[("", "From the score"), *Colour.choices])
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    expires_on = forms.DateField(
        label="Until (optional)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, tenant, today, **kwargs):
        super().__init__(*args, prefix="override", **kwargs)
        self.tenant = tenant
        self.today = today

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= self.today:
            raise forms.ValidationError("Pick a day after today.")
        return day

    def clean(self):
        data = super().clean()
        if data.get("score") is None and not data.get("colour") and not self.errors:
            raise forms.ValidationError("Give a score, a colour or both.")
        return data

    def expires_at(self):
        """The override ends at the start of the chosen day in the tenant's time zone."""
        day = self.cleaned_data["expires_on"]
        if day is None:
            return None
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min), tenant_zone(self.tenant))
