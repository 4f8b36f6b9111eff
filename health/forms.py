from django import forms
from django.utils import timezone

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
