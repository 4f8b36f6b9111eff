from django import forms

from .models import MAX_WINDOW_DAYS, Aggregation, MetricSubject, validate_metric_key


class MetricForm(forms.Form):
    key = forms.CharField(
        label="Key", max_length=63, validators=[validate_metric_key],
        help_text="Criteria read it as metric.<key>; it cannot change later.",
    )
    label = forms.CharField(label="Label", max_length=200)
    subject = forms.ChoiceField(label="Measured per", choices=MetricSubject.choices, initial=MetricSubject.ACCOUNT)
    event_names = forms.CharField(
        label="Events",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The event names to count, one per line or separated by commas.",
    )
    window_days = forms.IntegerField(label="Window (days)", min_value=1, max_value=MAX_WINDOW_DAYS, initial=30)
    aggregation = forms.ChoiceField(label="Aggregation", choices=Aggregation.choices, initial=Aggregation.COUNT)
    property = forms.CharField(
        label="Property", max_length=100, required=False, help_text="Only for sum, average and latest."
    )
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["key"].disabled = True

    def clean_event_names(self):
        text = self.cleaned_data["event_names"].replace(",", "\n")
        return [name.strip() for name in text.splitlines() if name.strip()]

    @staticmethod
    def initial_for(definition):
        return {
            "key": definition.key,
            "label": definition.label,
            "subject": definition.subject,
            "event_names": "\n".join(definition.event_names),
            "window_days": definition.window_days,
            "aggregation": definition.aggregation,
            "property": definition.property,
            "description": definition.description,
        }


class CriteriaCheckForm(forms.Form):
    """The editor's form as it is sent while typing: only the criteria text is read."""

    entry_criteria_text = forms.CharField(required=False, max_length=20000, strip=False)
