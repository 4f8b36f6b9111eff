from django import forms

from csplatform.customers.forms import IdListField


class AlertsBulkForm(forms.Form):
    """What to do with the alerts ticked in the inbox, with an optional note for all of them."""

    action = forms.ChoiceField(
        choices=[("acknowledge", "Acknowledge"), ("resolve", "Resolve")],
        error_messages={
            "required": "Choose what to do with the selected alerts.",
            "invalid_choice": "Choose to acknowledge or resolve the selected alerts.",
        },
    )
    alert = IdListField(
        error_messages={"required": "Select the alerts first.", "invalid": "Select alerts from the list."}
    )
    note = forms.CharField(required=False)
