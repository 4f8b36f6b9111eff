from django import forms

from .models import Role, Scope


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

    def __init__(self, data, *, actions, object_types):
        super().__init__(data)
        self.fields["action"].choices = [("", "Any action")] + [(a, a) for a in actions]
        self.fields["object_type"].choices = [("", "Any type")] + [(t, t) for t in object_types]
