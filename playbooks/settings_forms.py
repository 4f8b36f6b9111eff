"""The playbook editor: the playbook's own fields as a form, and its steps read from and written to the POST.

Each step is posted as `step-<i>-kind`, `step-<i>-delay`, `step-<i>-unit` and
one `step-<i>-<config path>` per config field of its kind, so a step of any
kind round-trips through the page without script and nothing typed is lost.
"""

import json
from dataclasses import dataclass, field

from django import forms

from .models import EnrollmentPolicy, StepKind, TriggerType
from .validation import COLOURS, DATE_FIELDS, ON_FAIL_ACTIONS, SEVERITIES

CRITERIA_WIDGET = forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false", "autocomplete": "off"})
UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}


@dataclass(frozen=True)
class ConfigField:
    """One field of a step's config; `path` is dotted for nested config (`on_fail.title`)."""

    path: str
    label: str
    type: str = "text"  # text | textarea | html | int | bool | choice | criteria | json
    choices: tuple = ()
    help: str = ""
    initial: object = field(default="")


EMAIL_FIELDS = (
    ConfigField("subject", "Subject"),
    ConfigField(
        "text", "Plain-text body", "textarea",
        help="Variables: {{ account.name }}, {{ contact.first_name }}, {{ owner.name }}.",
    ),
    ConfigField("html", "HTML body", "html", help="Optional; the plain-text body is sent alongside it."),
)

STEP_FIELDS = {
    StepKind.SEND_EMAIL: EMAIL_FIELDS
    + (
        ConfigField("requires_review", "Hold for the CSM's review before sending", "bool"),
        ConfigField("quiet_hours", "Send only in the contact's business hours", "bool", initial=True),
    ),
    StepKind.SCHEDULE_DEMO: (
        ConfigField("title", "Demo title"),
        ConfigField("days_ahead", "Days ahead to propose", "int"),
        ConfigField("duration_minutes", "Duration (minutes)", "int"),
    )
    + EMAIL_FIELDS,
    StepKind.USAGE_CHECK: (
        ConfigField("criteria", "Usage that passes", "criteria", help="e.g. metric.events_7d >= 10"),
        ConfigField("on_pass", "When it passes", "choice", (("continue", "Continue"), ("end", "End the run"))),
        ConfigField("on_fail.action", "When it fails", "choice", tuple((a, a.replace("_", " ")) for a in ON_FAIL_ACTIONS)),
        ConfigField("on_fail.title", "Task or alert title"),
        ConfigField("on_fail.due_in_days", "Task due in days", "int"),
        ConfigField("on_fail.severity", "Alert severity", "choice", tuple((s, s) for s in SEVERITIES), initial="warning"),
        ConfigField("on_fail.subject", "Email subject"),
        ConfigField("on_fail.text", "Email body", "textarea"),
        ConfigField("on_fail.step", "Go to step number", "int", help="Counting from 0."),
    ),
    StepKind.NPS_SURVEY: (
        ConfigField("subject", "Subject"),
        ConfigField("text", "Body", "textarea"),
        ConfigField("expires_days", "Survey open for days", "int"),
    ),
    StepKind.FLAG_EXPANSION: (ConfigField("title", "Title"), ConfigField("note", "Note", "textarea")),
    StepKind.CREATE_TASK: (
        ConfigField("title", "Task title"),
        ConfigField("description", "Description", "textarea"),
        ConfigField("due_in_days", "Due in days", "int"),
    ),
    StepKind.CALL_WEBHOOK: (ConfigField("payload", "Extra payload (JSON object)", "json"),),
    StepKind.UPDATE_ACCOUNT: (
        ConfigField("stage", "Move to stage (key)", help="Either a stage, or an attribute and value."),
        ConfigField("reason", "Reason for the move"),
        ConfigField("attribute", "Set attribute"),
        ConfigField("value", "To value"),
    ),
}

# Which trigger form fields make up the trigger config of each trigger type.
TRIGGER_FIELDS = {
    TriggerType.STAGE_ENTERED: ("stage",),
    TriggerType.STAGE_LEFT: ("stage",),
    TriggerType.HEALTH_BELOW: ("value",),
    TriggerType.HEALTH_ABOVE: ("value",),
    TriggerType.HEALTH_COLOUR_CHANGED: ("colour",),
    TriggerType.SEGMENT_ENTERED: ("segment",),
    TriggerType.EVENT_RECEIVED: ("event",),
    TriggerType.DATE_RELATIVE: ("field", "days_before"),
    TriggerType.MANUAL: (),
}


class PlaybookForm(forms.Form):
    key = forms.SlugField(label="Key", max_length=50, help_text="It cannot change later.")
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    trigger_type = forms.ChoiceField(label="Starts when", choices=TriggerType.choices)
    trigger_stage = forms.ChoiceField(label="Stage", required=False, help_text="For the stage triggers.")
    trigger_value = forms.FloatField(label="Health score", required=False, help_text="For the health below/above triggers.")
    trigger_colour = forms.ChoiceField(
        label="Health colour", required=False, choices=[("", "—")] + [(c, c) for c in COLOURS],
        help_text="For the colour trigger.",
    )
    trigger_segment = forms.ChoiceField(label="Segment", required=False, help_text="For the segment trigger.")
    trigger_event = forms.CharField(label="Usage event", max_length=200, required=False, help_text="For the event trigger.")
    trigger_field = forms.ChoiceField(
        label="Account date", required=False, choices=[("", "—")] + [(f, f) for f in DATE_FIELDS],
        help_text="For the date trigger.",
    )
    trigger_days_before = forms.IntegerField(label="Days before the date", required=False, min_value=0, max_value=365)
    audience_text = forms.CharField(
        label="Audience (contacts)", required=False, strip=False, widget=CRITERIA_WIDGET,
        help_text='Who receives customer-facing steps, e.g. contact.role in ["administrator", "champion"]. '
        "Empty: the account's primary contact.",
    )
    exit_criteria_text = forms.CharField(
        label="Exit criteria", required=False, strip=False, widget=CRITERIA_WIDGET,
        help_text="A run stops before its next step once this holds for the account.",
    )
    enrollment_policy = forms.ChoiceField(label="Enrol an account", choices=EnrollmentPolicy.choices)
    again_after_days = forms.IntegerField(label="Again after days", required=False, min_value=1)

    def __init__(self, *args, tenant, editing=False, **kwargs):
        from alerts.models import Segment
        from lifecycle.models import Stage

        super().__init__(*args, **kwargs)
        stages = Stage.objects.for_tenant(tenant).order_by("position", "pk").values_list("key", "name")
        self.fields["trigger_stage"].choices = [("", "—")] + list(stages)
        self.fields["trigger_segment"].choices = [("", "—")] + list(
            Segment.objects.for_tenant(tenant).values_list("key", "name")
        )
        if editing:
            self.fields["key"].disabled = True

    def definition(self):
        """The service's keyword arguments from the cleaned data, the trigger config built for its type."""
        data = dict(self.cleaned_data)
        trigger = {
            name.removeprefix("trigger_"): data.pop(name)
            for name in list(data)
            if name.startswith("trigger_") and name != "trigger_type"
        }
        data["trigger_config"] = {name: trigger[name] for name in TRIGGER_FIELDS.get(data["trigger_type"], ())}
        value = data["trigger_config"].get("value")
        if isinstance(value, float) and value.is_integer():
            data["trigger_config"]["value"] = int(value)
        return data

    @staticmethod
    def initial_for(playbook):
        initial = {
            name: getattr(playbook, name)
            for name in (
                "key", "name", "description", "trigger_type", "audience_text", "exit_criteria_text",
                "enrollment_policy", "again_after_days",
            )
        }
        initial.update({f"trigger_{name}": value for name, value in playbook.trigger_config.items()})
        return initial


class PreviewForm(forms.Form):
    """The real account an email step is previewed against."""

    account = forms.ModelChoiceField(label="Preview emails for", queryset=None, empty_label="— choose an account —")

    def __init__(self, *args, accounts, shown, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts
        # Any of the tenant's accounts is accepted; the menu lists the first `shown` by name.
        self.fields["account"].choices = [("", "— choose an account —")] + [
            (account.pk, account.name) for account in accounts.order_by("name", "pk")[:shown]
        ]


# Steps -------------------------------------------------------------------------


def _split_delay(minutes):
    for unit in ("days", "hours"):
        if minutes and minutes % UNITS[unit] == 0:
            return str(minutes // UNITS[unit]), unit
    return str(minutes), "minutes"


def _nested_get(config, path):
    value = config
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part, "")
    return value


def _display(spec, value):
    """The value as the input shows it."""
    if spec.type == "bool":
        return bool(value)
    if spec.type == "json":
        return value if isinstance(value, str) else json.dumps(value or {}, indent=2)
    return "" if value is None else str(value)


def editor_step(kind, delay, unit, values):
    """A step as the editor holds it: raw strings (and booleans) keyed by config path."""
    return {"kind": kind, "delay": delay, "unit": unit, "values": values}


def steps_from_saved(steps):
    rows = []
    for step in steps:
        delay, unit = _split_delay(step.delay_minutes)
        specs = STEP_FIELDS.get(step.kind, ())
        values = {spec.path: _display(spec, _nested_get(step.config, spec.path)) for spec in specs}
        rows.append(editor_step(step.kind, delay, unit, values))
    return rows


def new_step(kind):
    kind = kind if kind in STEP_FIELDS else StepKind.SEND_EMAIL
    return editor_step(kind, "0", "days", {s.path: _display(s, s.initial) for s in STEP_FIELDS[kind]})


def steps_from_post(data):
    """The editor's steps as posted, in order; a step whose kind changed keeps the values of fields both kinds share."""
    rows = []
    index = 0
    while f"step-{index}-kind" in data:
        prefix = f"step-{index}-"
        kind = data[f"{prefix}kind"]
        specs = STEP_FIELDS.get(kind, ())
        values = {
            spec.path: (f"{prefix}{spec.path}" in data) if spec.type == "bool" else data.get(f"{prefix}{spec.path}", "")
            for spec in specs
        }
        rows.append(editor_step(kind, data.get(f"{prefix}delay", "0"), data.get(f"{prefix}unit", "days"), values))
        index += 1
    return rows


def _parsed(spec, raw):
    """The config value of one input; what cannot be parsed goes through as typed, for the service to reject."""
    if spec.type == "bool":
        return bool(raw)
    raw = raw.strip() if spec.type in ("int", "json") else raw
    if spec.type == "int":
        try:
            return int(raw)
        except ValueError:
            return raw
    if spec.type == "json":
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return raw
    return raw


def step_definitions(rows):
    """The service's steps: `[{kind, delay_minutes, config}]`. Empty texts are left out so defaults apply."""
    steps = []
    for row in rows:
        try:
            delay = int(row["delay"]) * UNITS.get(row["unit"], 1)
        except ValueError:
            delay = row["delay"]
        config = {}
        for spec in STEP_FIELDS.get(row["kind"], ()):
            raw = row["values"].get(spec.path, "")
            if raw == "" and spec.type != "json":
                continue
            target = config
            *parents, last = spec.path.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = _parsed(spec, raw)
        steps.append({"kind": row["kind"], "delay_minutes": delay, "config": config})
    return steps


def steps_edited(rows, action, new_kind):
    """Apply an editor button (`add`, `remove:<i>`, `up:<i>`, `down:<i>`) to the steps; None if it is not one."""
    verb, _, position = action.partition(":")
    if verb == "add":
        return rows + [new_step(new_kind)]
    if verb not in ("remove", "up", "down") or not position.isdigit() or int(position) >= len(rows):
        return None
    index = int(position)
    rows = list(rows)
    if verb == "remove":
        del rows[index]
    else:
        other = index - 1 if verb == "up" else index + 1
        if 0 <= other < len(rows):
            rows[index], rows[other] = rows[other], rows[index]
    return rows
