from rest_framework import serializers

from ..models import User


class TenantRelatedField(serializers.SlugRelatedField):
    """A related object looked up only among the request tenant's rows.

    `TenantRelatedField(queryset=Account.objects, slug_field="external_id")`:
    another tenant's id is "does not exist", exactly like an unknown one.
    """

    def get_queryset(self):
        return super().get_queryset().for_tenant(self.context["tenant"])


class TenantPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by its id, looked up only among the request tenant's rows, as TenantRelatedField."""

    def get_queryset(self):
        return super().get_queryset().for_tenant(self.context["tenant"])


class TenantMemberField(serializers.SlugRelatedField):
    """A user by email, accepted only if they are a member of the request tenant."""

    default_error_messages = {"does_not_exist": "{value} is not a member of this team."}

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "email")
        kwargs.setdefault("queryset", User.objects.all())
        super().__init__(**kwargs)

    def get_queryset(self):
        return User.objects.members_of(self.context["tenant"])

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.strip().lower()
        return super().to_internal_value(data)
