from django import forms

from csplatform.customers.models import Account

from .models import Stage


class MoveStageForm(forms.Form):
    """Move one account to another stage; the reason goes into the account's history."""

    stage = forms.ModelChoiceField(label="Move to", queryset=None, to_field_name="key", empty_label=None)
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args, tenant, stages=None, **kwargs):
        """`stages` (already loaded, in order) saves a query on pages that list the stages anyway."""
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = Stage.objects.for_tenant(tenant).order_by("position", "id")
        if stages is not None:
            self.fields["stage"].choices = [(stage.key, stage.name) for stage in stages]


class BoardMoveForm(MoveStageForm):
    """The board's move: the account comes from the form too, looked up in the tenant only."""

    account = forms.ModelChoiceField(queryset=None, widget=forms.HiddenInput)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, tenant=tenant, **kwargs)
        self.fields["account"].queryset = Account.objects.for_tenant(tenant)
