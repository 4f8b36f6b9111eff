from django import forms

from csplatform.customers.forms import IdListField


SNOOZE_CHOICES = [(1, "1 day"), (3, "3 days"), (7, "1 week"), (14, "2 weeks"), (30, "30 days")]


class AlertsBulkForm(forms.Form):
    """What to do with the alerts ticked in the inbox, with an optional note for all of them."""

    action = forms.ChoiceField(
        choices=[("acknowledge", "Acknowledge"), ("resolve", "Resolve"), ("snooze", "Snooze"), ("wake", "Wake")],
        error_messages={
            "required": "Choose what to do with the selected alerts.",
            "invalid_choice": "Choose to acknowledge, resolve, snooze or wake the selected alerts.",
        },
    )
    alert = IdListField(
        error_messages={"required": "Select the alerts first.", "invalid": "Select alerts from the list."}
    )
    note = forms.CharField(required=False)
    days = forms.TypedChoiceField(
        label="Snooze for",
        coerce=int,
        choices=SNOOZE_CHOICES,
        initial=7,
        required=False,
        error_messages={"invalid_choice": "Snooze for one of the lengths offered."},
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "snooze" and not cleaned.get("days"):
            self.add_error("days", "Choose how long to snooze the selected alerts for.")
        return cleaned
