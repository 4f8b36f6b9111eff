import uuid

from django import forms
from django.db.models import Q

from .imports import MAX_IMPORT_BYTES, too_large_message
from .models import Account, AccountNote, Contact, SavedView, currency_code, renewal_after_contract


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=AccountNote.MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write the note first."},
    )
    pinned = forms.BooleanField(label="Pin to the top", required=False)


class NoteAddForm(NoteForm):
    # A token written into the form makes a double submit add the note once.
    token = forms.UUIDField(widget=forms.HiddenInput)
    tell = forms.TypedMultipleChoiceField(
        label="Tell teammates",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose teammates from the list: %(value)s is not one of them."},
    )

    def __init__(self, *args, teammates=(), **kwargs):
        """`teammates`: the members who may be told of the note, the author left out."""
        super().__init__(*args, **kwargs)
        self.teammates = {user.pk: user for user in teammates}
        self.fields["tell"].choices = [(user.pk, str(user)) for user in teammates]

    @classmethod
    def blank(cls, teammates=()):
        return cls(initial={"token": uuid.uuid4()}, teammates=teammates)

    def told(self):
        """The teammates ticked, as users."""
        return [self.teammates[pk] for pk in self.cleaned_data["tell"]]


class IdListField(forms.Field):
    """Row ids posted under one name; which rows they may name is the service's business."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "Select rows from the list."}
    largest = 2**63 - 1

    def to_python(self, value):
        try:
            ids = [int(item) for item in value or []]
        except (TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if any(not 0 < pk <= self.largest for pk in ids):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return ids


class TickedAccountsField(IdListField):
    """The accounts ticked in the portfolio, for a form that acts on them."""

    default_error_messages = {"required": "Select the accounts first.", "invalid": "Select accounts from the list."}


class OwnerAssignForm(forms.Form):
    """Who gets the selected accounts: a member, or nobody."""

    # Nobody is a choice of its own, so that a select left at its prompt unassigns nothing.
    NOBODY = "none"

    owner = forms.ChoiceField(
        label="Owner",
        error_messages={
            "required": "Choose who gets the accounts.",
            "invalid_choice": "Choose a member of this team.",
        },
    )
    account = TickedAccountsField()

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = {str(user.pk): user for user in members}
        self.fields["owner"].choices = [(self.NOBODY, "Nobody"), *((pk, str(user)) for pk, user in self.members.items())]

    def clean_owner(self):
        owner = self.cleaned_data["owner"]
        return None if owner == self.NOBODY else self.members[owner]


class ContactEditForm(forms.ModelForm):
    """What the team knows of a contact that the product acts on: the role (playbooks write to champions and
    primary contacts) and whether they asked to get no more emails."""

    class Meta:
        model = Contact
        fields = ["title", "role", "unsubscribed"]
        labels = {"unsubscribed": "Unsubscribed: send no playbook emails"}


class ContactAddForm(forms.ModelForm):
    """A person the team met that no integration sent yet: keyed by their email, which becomes the contact's
    external id, so that an integration keying contacts by email updates this one rather than adding another."""

    # The account page holds other forms with a title.
    prefix = "contact"

    class Meta:
        model = Contact
        fields = ["name", "email", "title", "role"]

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["name"].required = True
        self.fields["email"].required = True

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        longest = Contact._meta.get_field("external_id").max_length
        if len(email) > longest:
            # It becomes the external id, which is shorter than an email may be.
            raise forms.ValidationError(f"Use an email of at most {longest} characters.")
        contacts = Contact.objects.for_tenant(self.tenant).select_related("account")
        same = contacts.filter(Q(external_id=email) | Q(email__iexact=email)).first()
        if same is not None:
            raise forms.ValidationError(f"{same} at {same.account} already has this email.")
        return email


class AccountDetailsForm(forms.ModelForm):
    """What the team corrects of an account by hand; its owner has a form of its own, its external id stays."""

    mrr = forms.DecimalField(label="MRR", min_value=0, max_digits=14, decimal_places=2)

    class Meta:
        model = Account
        fields = [
            "name", "domain", "plan", "mrr", "currency",
            "signup_date", "contract_start", "renewal_date", "trial_ends_at", "card_expires_at",
        ]
        widgets = {
            **{name: forms.DateInput(attrs={"type": "date"}) for name in
               ["signup_date", "contract_start", "renewal_date", "card_expires_at"]},
            "trial_ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }

    def clean_currency(self):
        return currency_code(self.cleaned_data["currency"])

    def clean(self):
        cleaned = super().clean()
        try:
            renewal_after_contract(cleaned.get("contract_start"), cleaned.get("renewal_date"))
        except forms.ValidationError as exc:
            self.add_error(None, exc)
        return cleaned


class SavedViewForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=80,
        error_messages={"required": "Name the view.", "max_length": "Keep the name to 80 characters."},
    )
    query = forms.CharField(required=False, max_length=SavedView.MAX_QUERY_LENGTH, widget=forms.HiddenInput)


class CsvImportForm(forms.Form):
    kind = forms.ChoiceField(
        label="What the file holds",
        choices=[("accounts", "Accounts"), ("contacts", "Contacts")],
        widget=forms.RadioSelect,
        initial="accounts",
        error_messages={"required": "Choose accounts or contacts.", "invalid_choice": "Choose accounts or contacts."},
    )
    file = forms.FileField(
        label="CSV file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        error_messages={"required": "Choose the CSV file to import.", "empty": "The file is empty."},
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(too_large_message(), code="too_large")
        return upload
