from django import forms
from django.contrib.auth import forms as auth_forms

from .models import User


class EmailAuthenticationForm(auth_forms.AuthenticationForm):
    """Django's sign-in form, labelled for what our users type: their email.

    The field keeps the name `username` so Django's authentication backend
    and LoginView work unchanged (User.USERNAME_FIELD is the email).
    """

    username = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. Check both and try again.",
    }

    def clean_username(self):
        return self.cleaned_data["username"].lower()


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["name"]
        labels = {"name": "Your name"}
        help_texts = {"name": "How teammates see you: as the owner of accounts and tasks, and on notes."}
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "name"})}


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's form, without taking the focus: it is the second form of the profile page."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)
