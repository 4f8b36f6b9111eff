import uuid

from django import forms

from .models import AccountNote


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

    @classmethod
    def blank(cls):
        return cls(initial={"token": uuid.uuid4()})
