from django import forms

from csplatform.customers.forms import IdListField
from csplatform.tenancy.models import Role

from .models import Channel, Severity, Subject, validate_key
from .webhooks import EVENT_TYPES

CRITERIA_WIDGET = forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false", "autocomplete": "off"})


def lines(text):
    """The non-empty entries of text written one per line or separated by commas."""
    return [entry.strip() for entry in text.replace(",", "\n").splitlines() if entry.strip()]


class KeyedForm(forms.Form):
    """A form whose `key` is written in criteria and playbooks, so it is fixed once saved."""

    key = forms.CharField(label="Key", max_length=50, validators=[validate_key])
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    fixed_when_editing = ("key",)

    def __init__(self, *args, editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            for name in self.fixed_when_editing:
                self.fields[name].disabled = True


class SegmentForm(KeyedForm):
    subject = forms.ChoiceField(label="Members are", choices=Subject.choices, initial=Subject.ACCOUNT)
    criteria_text = forms.CharField(
        label="Criteria", strip=False, widget=CRITERIA_WIDGET,
        help_text='Who belongs, e.g. health.score < 40 and account.plan in ["pro"]. Members are refreshed as data arrives.',
    )
    fixed_when_editing = ("key", "subject")

    @staticmethod
    def initial_for(segment):
        return {name: getattr(segment, name) for name in ("key", "name", "description", "subject", "criteria_text")}


class AlertRuleForm(KeyedForm):
    condition_text = forms.CharField(
        label="Condition", strip=False, widget=CRITERIA_WIDGET,
        help_text="An alert opens for each account while this holds and resolves when it stops holding.",
    )
    severity = forms.ChoiceField(label="Severity", choices=Severity.choices, initial=Severity.WARNING)
    notify_owner = forms.BooleanField(label="Notify the account's owner", required=False, initial=True)
    notify_roles = forms.MultipleChoiceField(
        label="Also notify every member who is", choices=Role.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    notify_emails = forms.CharField(
        label="Also email", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses, one per line or separated by commas.",
    )
    channels = forms.MultipleChoiceField(
        label="Channels", choices=Channel.choices, widget=forms.CheckboxSelectMultiple, initial=[Channel.IN_APP]
    )
    slack_webhook_url = forms.URLField(
        label="Slack incoming webhook URL", max_length=500, assume_scheme="https", required=False, help_text="Needed for the Slack channel."
    )
    cooldown_minutes = forms.IntegerField(
        label="Cooldown (minutes)", min_value=0, initial=0,
        help_text="After an alert resolves, do not open another for the same account within this time.",
    )
    include_terminal_stages = forms.BooleanField(
        label="Also watch accounts in a terminal stage, such as Churned", required=False,
        help_text="Customers who left open no alerts unless this is ticked, as for a rule about winning them back. "
        "Their open alerts resolve when they leave.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def clean_notify_emails(self):
        return lines(self.cleaned_data["notify_emails"])

    @staticmethod
    def initial_for(rule):
        initial = {
            name: getattr(rule, name)
            for name in (
                "key", "name", "description", "condition_text", "severity", "notify_owner", "notify_roles", "channels",
                "slack_webhook_url", "cooldown_minutes", "include_terminal_stages", "enabled",
            )
        }
        initial["notify_emails"] = "\n".join(rule.notify_emails)
        return initial


class WebhookForm(forms.Form):
    url = forms.URLField(label="Endpoint URL", max_length=500, assume_scheme="https", help_text="Events are POSTed here as signed JSON.")
    description = forms.CharField(label="Description", max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[(name, f"{name}: {when}") for name, when in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )


class RetryDeliveriesForm(forms.Form):
    """The failed deliveries to send again: those posted, else every failed one of the endpoint."""

    delivery = IdListField(required=False)
