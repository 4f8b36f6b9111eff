from django import forms

from csplatform.rules import CriteriaError, compile_criteria

from .models import Stage

CRITERIA_HELP = (
    "Accounts in the stage before this one (or in any earlier stage, below) enter it when this holds, e.g. "
    'metric.logins_30d >= 10 and account.plan in ["pro", "team"]. Leave empty to enter it only by hand.'
)


class StageForm(forms.Form):
    key = forms.SlugField(label="Key", max_length=50, help_text="Used in criteria and playbooks; it cannot change later.")
    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    colour = forms.RegexField(
        label="Colour", regex=r"^#[0-9a-fA-F]{6}$", initial="#64748b", widget=forms.TextInput(attrs={"type": "color"}),
        error_messages={"invalid": "Use a hex colour such as #3b82f6."},
    )
    entry_criteria_text = forms.CharField(
        label="Entry criteria", required=False, strip=False, help_text=CRITERIA_HELP,
        widget=forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false", "autocomplete": "off"}),
    )
    expected_days = forms.IntegerField(
        label="Expected days in stage", min_value=1, required=False, help_text="Accounts past it show as behind."
    )
    entered_from_any_earlier = forms.BooleanField(
        label="Enter from any earlier stage", required=False,
        help_text="For criteria that do not depend on progress, such as a renewal date: accounts in every stage "
        "before this one move here when its criteria hold, not only those in the stage just before it.",
    )
    is_initial = forms.BooleanField(label="New accounts start here", required=False)
    is_terminal = forms.BooleanField(label="Terminal: accounts never move on automatically", required=False)
    outcome = forms.CharField(label="Outcome", max_length=50, required=False, help_text="For a terminal stage, e.g. churned.")
    cycle_to = forms.ModelChoiceField(
        label="After renewal, re-enter at", queryset=None, required=False, empty_label="— nowhere —"
    )

    def __init__(self, *args, tenant, stage=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.criteria_error = None
        others = Stage.objects.for_tenant(tenant)
        self.fields["cycle_to"].queryset = others.exclude(pk=stage.pk) if stage else others
        if stage is not None:
            self.fields["key"].disabled = True

    def clean_entry_criteria_text(self):
        text = self.cleaned_data["entry_criteria_text"].strip()
        if text:
            try:
                compile_criteria(text, subject="account", tenant=self.tenant)
            except CriteriaError as error:
                self.criteria_error = error
                raise forms.ValidationError(str(error), code="criteria") from error
        return text

    @staticmethod
    def initial_for(stage):
        return {
            name: getattr(stage, name)
            for name in (
                "key", "name", "description", "colour", "entry_criteria_text", "entered_from_any_earlier",
                "expected_days", "is_initial", "is_terminal", "outcome", "cycle_to",
            )
        }


class StageDeleteForm(forms.Form):
    move_to = forms.ModelChoiceField(
        label="Move its accounts to", queryset=None, required=False, empty_label="— choose a stage —"
    )

    def __init__(self, *args, tenant, stage, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["move_to"].queryset = Stage.objects.for_tenant(tenant).exclude(pk=stage.pk)


class TemplateApplyForm(forms.Form):
    """One choice per current stage that holds accounts but is not in the template: where they go."""

    def __init__(self, *args, template, occupied, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "— choose a stage —")] + [(spec.key, spec.name) for spec in template.stages]
        for stage, count in occupied:
            self.fields[f"map_{stage.key}"] = forms.ChoiceField(
                label=f"{stage.name} ({count} account{'s' if count != 1 else ''}) moves to", choices=choices
            )

    def mapping(self):
        return {name.removeprefix("map_"): value for name, value in self.cleaned_data.items()}
