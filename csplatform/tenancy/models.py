import hashlib
import secrets
import zoneinfo

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


def validate_timezone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.")


class Tenant(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class TenantQuerySet(models.QuerySet):
    """The one way to read tenant data: `Model.objects.for_tenant(tenant)`.

    A static test fails on any other use of `.objects` on a tenant model;
    set-based pipeline code that spans tenants says so by calling
    `dangerously_all_tenants()`.
    """

    def for_tenant(self, tenant):
        tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
        if tenant_id is None:
            raise ValueError("for_tenant() needs a tenant")
        return self.filter(tenant_id=tenant_id)

    def dangerously_all_tenants(self):
        return self.all()


def tenant_key(*, db_index=False):
    """The tenant column of a tenant table.

    Not indexed alone: every tenant table declares indexes and unique keys
    that start with the tenant (a test holds each to it), and they serve a
    query of the tenant alone as well as an index of it would. `db_index=True`
    is for a table with no other whole-table key to start with the tenant.
    """
    return models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=db_index)


class TenantModel(models.Model):
    tenant = tenant_key()

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("Users sign in by email; an email is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def members_of(self, tenant):
        """The tenant's members by name: who can own its accounts and tasks."""
        return self.filter(pk__in=Membership.objects.for_tenant(tenant).values("user_id")).order_by("name", "email")


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.name or self.email


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    CSM = "csm", "CSM"
    VIEWER = "viewer", "Viewer"


WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def default_work_days():
    return [0, 1, 2, 3, 4]


def validate_work_days(value):
    if not isinstance(value, list) or not value or any(day not in range(7) for day in value):
        raise ValidationError("Choose at least one working day.")


class Membership(TenantModel):
    """A user's role in a tenant, and their working hours there (demo slots are proposed inside them, the daily
    digest is sent as they start)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.CSM)
    # Blank: the tenant's zone, so a member who never set one follows the team.
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    work_start_hour = models.PositiveSmallIntegerField(default=9, validators=[MaxValueValidator(23)])
    work_end_hour = models.PositiveSmallIntegerField(
        default=17, validators=[MinValueValidator(1), MaxValueValidator(24)]
    )
    # Weekday numbers, Monday = 0.
    work_days = models.JSONField(default=default_work_days, validators=[validate_work_days])
    # The daily digest email at the start of the member's working day (csplatform.digests).
    daily_digest = models.BooleanField(default=True)
    # An email too, besides the notification in the app, when a teammate tells them of a note or gives them a task.
    email_when_told = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=Q(work_end_hour__gt=F("work_start_hour")),
                name="membership_work_end_after_start",
                violation_error_message="Working hours must end after they start.",
            ),
        ]

    def __str__(self):
        return f"{self.user} ({self.role}) in {self.tenant_id}"

    @property
    def work_days_text(self):
        return ", ".join(WEEKDAYS[day][:3] for day in sorted(self.work_days))


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    INGEST = "ingest", "Ingest"


API_KEY_PREFIX_LENGTH = 12


def hash_api_key(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(TenantQuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(TenantModel):
    """A tenant's API key. Only the SHA-256 of the key is stored.

    Keys are 256-bit random, so a fast hash is enough: there is nothing to
    brute-force that a slow hash would protect.
    """

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"])]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw_key():
        return "csp_" + secrets.token_urlsafe(32)

    @property
    def is_active(self):
        return self.revoked_at is None

    def has_scope(self, scope):
        return scope in self.scopes


# The author of the changes no person made (scripts, the pipeline, keys created from the command line): stored
# as this label, shown as this name.
SYSTEM_ACTOR_LABEL = "system"
SYSTEM_ACTOR_NAME = "The platform"


class AuditLogEntry(TenantModel):
    """Who changed which configuration, when, and what it was before and after."""

    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    @property
    def made_by(self):
        """Who made the change, in words: a member's name (and the API key used), or the platform."""
        return SYSTEM_ACTOR_NAME if self.actor_label == SYSTEM_ACTOR_LABEL else self.actor_label
