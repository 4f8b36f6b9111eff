import zoneinfo

from django import forms
from django.utils.formats import date_format

from .members import HOURS_FIELDS
from .models import SYSTEM_ACTOR_LABEL, SYSTEM_ACTOR_NAME, WEEKDAYS, Membership, Role, Scope

ZONES = sorted(zoneinfo.available_timezones())


def add_service_errors(form, error):
    """Show a service's ValidationError on the form: on the field it names, else above the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    name = forms.CharField(label="Name", max_length=200, required=False, help_text="Used for a new user only.")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.CSM)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class WorkingHoursForm(forms.ModelForm):
    """A member's working hours; the model checks them (a known zone, the end after the start, a working day)."""

    timezone = forms.ChoiceField(label="Time zone", required=False)
    work_start_hour = forms.TypedChoiceField(
        label="Starts at", coerce=int, choices=[(hour, f"{hour:02d}:00") for hour in range(24)]
    )
    work_end_hour = forms.TypedChoiceField(
        label="Ends at", coerce=int, choices=[(hour, f"{hour:02d}:00") for hour in range(1, 25)]
    )
    work_days = forms.TypedMultipleChoiceField(
        label="Working days", coerce=int, choices=list(enumerate(WEEKDAYS)), widget=forms.CheckboxSelectMultiple
    )
    daily_digest = forms.BooleanField(
        label="Email a daily digest as the working day starts",
        required=False,
        help_text="Open alerts on the member's accounts, their tasks due by that day and renewals within 30 days; "
        "no email on a day with none of these.",
    )
    email_when_told = forms.BooleanField(
        label="Email notes and tasks from teammates as they come",
        required=False,
        help_text="A note a teammate tells the member of, a task a teammate gives them: by email as well as among "
        "the notifications in the app.",
    )

    class Meta:
        model = Membership
        fields = HOURS_FIELDS

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [("", f"The team's time zone ({tenant.timezone})")] + [
            (zone, zone) for zone in ZONES
        ]


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="Where the key is used, e.g. “Segment production”.")
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Read: read accounts, scores and stages. Write: change them. Ingest: send usage events.",
    )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label="Action", required=False)
    object_type = forms.ChoiceField(label="Object type", required=False)
    who = forms.ChoiceField(label="Who", required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    # The filters that are a lookup on the entries; "who" has two.
    LOOKUPS = {
        "action": "action",
        "object_type": "object_type",
        "since": "created_at__date__gte",
        "until": "created_at__date__lte",
    }

    def __init__(self, data, *, entries):
        """Each filter's choices are those in the tenant's `entries`: their actions, object types and authors."""
        super().__init__(data)
        actions = entries.order_by("action").values_list("action", flat=True).distinct()
        object_types = entries.order_by("object_type").values_list("object_type", flat=True).distinct()
        actors = entries.exclude(actor=None).order_by("actor__email").values_list("actor_id", "actor__email")
        self.fields["action"].choices = [("", "Any action")] + [(a, a) for a in actions]
        self.fields["object_type"].choices = [("", "Any type")] + [(t, t) for t in object_types]
        self.fields["who"].choices = (
            [("", "Anyone")]
            + [(str(pk), email) for pk, email in actors.distinct()]
            + [(SYSTEM_ACTOR_LABEL, SYSTEM_ACTOR_NAME)]
        )

    def clean(self):
        cleaned_data = super().clean()
        since, until = cleaned_data.get("since"), cleaned_data.get("until")
        if since and until and until < since:
            self.add_error("until", f"Choose {date_format(since, 'M j, Y')} or a later day: the first day shown.")
        return cleaned_data

    def filter(self, entries):
        """The entries the valid filters keep; a filter the form refuses shows its error and keeps every entry."""
        self.is_valid()
        chosen = {name: value for name, value in self.cleaned_data.items() if value}
        who = chosen.pop("who", None)
        entries = entries.filter(**{self.LOOKUPS[name]: value for name, value in chosen.items()})
        if who:
            entries = entries.filter(actor=None) if who == SYSTEM_ACTOR_LABEL else entries.filter(actor_id=who)
        return entries
