import datetime as dt

import factory
from django.utils import timezone

from csplatform.customers.models import Account, Contact, UsageEvent
from csplatform.tenancy.models import Membership, Role, Tenant, User


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "password")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.CSM


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"acct-{n}")
    name = factory.Faker("company")
    domain = factory.LazyAttribute(lambda o: f"{o.external_id}.example.com")
    plan = "pro"
    mrr = 500
    signup_date = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=30))


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    external_id = factory.Sequence(lambda n: f"contact-{n}")
    email = factory.Sequence(lambda n: f"contact{n}@customer.example")
    name = factory.Faker("name")


class UsageEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageEvent

    account = factory.SubFactory(AccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    message_id = factory.Sequence(lambda n: f"msg-{n}")
    event = "login"
    timestamp = factory.LazyFunction(timezone.now)
