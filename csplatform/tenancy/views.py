import logging
import smtplib

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.mail import send_mail
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from .decorators import user_memberships
from .forms import PasswordChangeForm, ProfileForm
from .members import link_valid_days
from .ratelimit import SIGN_IN_FAILURES, RateLimitedAuthenticationForm, RateLimitedPasswordResetForm

logger = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    template_name = "tenancy/login.html"
    authentication_form = RateLimitedAuthenticationForm
    redirect_authenticated_user = True


@login_required
def home(request):
    """Send the user to their tenant, let them pick one, or explain that they have none."""
    memberships = user_memberships(request.user)
    if len(memberships) == 1:
        return redirect("portfolio", tenant_slug=memberships[0].tenant.slug)
    request.memberships = memberships
    template = "tenancy/pick_tenant.html" if memberships else "tenancy/no_tenant.html"
    return render(request, template, {"memberships": memberships})


def render_profile(request, profile_form=None, password_form=None, status=200):
    """The signed-in user's own page: their name, their password and the teams they belong to."""
    context = {
        "profile_form": profile_form or ProfileForm(instance=request.user),
        "password_form": password_form or PasswordChangeForm(user=request.user),
        "memberships": user_memberships(request.user),
    }
    return render(request, "tenancy/profile.html", context, status=status)


@login_required
def profile(request):
    if request.method != "POST":
        return render_profile(request)
    form = ProfileForm(request.POST, instance=request.user)
    if not form.is_valid():
        return render_profile(request, profile_form=form, status=400)
    form.save()
    messages.success(request, "Your name is saved.")
    return redirect("profile")


@require_POST
@login_required
def password_change(request):
    form = PasswordChangeForm(user=request.user, data=request.POST)
    if not form.is_valid():
        return render_profile(request, password_form=form, status=400)
    user = form.save()
    # Keeps this browser signed in; every other session of the user ends with the old password.
    update_session_auth_hash(request, user)
    tell_password_changed(request, user)
    messages.success(request, "Your password is changed. Browsers signed in with the old one are signed out.")
    return redirect("profile")


def tell_password_changed(request, user):
    """Email the user that their password changed, so a change they did not make does not go unseen.

    The change is made whatever the mail server says; a failure to tell is
    logged, as Django logs a reset link it could not send.
    """
    context = {
        "user": user,
        "changed_at": timezone.now(),
        "reset_link": request.build_absolute_uri(reverse("password-reset")),
    }
    try:
        send_mail(
            subject="Your csplatform password was changed",
            message=render_to_string("tenancy/emails/password_changed.txt", context),
            from_email=None,
            recipient_list=[user.email],
        )
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not tell user %s that their password changed", user.pk)


class LinkLifetimeMixin:
    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "valid_days": link_valid_days()}


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a link that sets a new password; the answer is the same whether the email is known or not."""

    template_name = "tenancy/password_reset.html"
    form_class = RateLimitedPasswordResetForm
    email_template_name = "tenancy/emails/password_reset.txt"
    subject_template_name = "tenancy/emails/password_reset_subject.txt"
    success_url = reverse_lazy("password-reset-sent")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    @property
    def extra_email_context(self):
        return {"valid_days": link_valid_days()}


class PasswordResetSentView(LinkLifetimeMixin, auth_views.PasswordResetDoneView):
    template_name = "tenancy/password_reset_sent.html"


class PasswordSetView(LinkLifetimeMixin, auth_views.PasswordResetConfirmView):
    """Where a link from an email sets a new password; the user then signs in with it."""

    template_name = "tenancy/password_set.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        # The person who proved they read the mailbox is not held back by earlier failed sign-ins.
        SIGN_IN_FAILURES.clear_account(self.request, form.user.email)
        messages.success(self.request, "Your password is set. Sign in with your email and the new password.")
        return super().form_valid(form)
