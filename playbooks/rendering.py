"""Email templates written by tenant admins, rendered in a sandbox.

A dedicated template Engine with none of Django's default builtins: no
`{% load %}`, `{% include %}`, `{% debug %}` or any tag that reaches files or
settings, only a short list of safe tags and filters. The context holds
plain dicts, never model instances, so a template cannot walk to a password
hash or call a method.
"""

from functools import lru_cache

from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import VariableDoesNotExist

SAFE_TAGS = ("if", "for", "with", "firstof", "comment", "spaceless", "cycle")
SAFE_FILTERS = (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "truncatewords",
    "truncatechars",
    "floatformat",
    "yesno",
    "length",
    "first",
    "last",
    "join",
    "date",
    "time",
    "linebreaksbr",
    "pluralize",
    "add",
    "escape",
    "urlencode",
)

register = Library()
for _name in SAFE_TAGS:
    register.tag(_name, defaulttags.register.tags[_name])
for _name in SAFE_FILTERS:
    _filter = defaultfilters.register.filters[_name]
    register.filter(
        _name,
        _filter,
        **{flag: getattr(_filter, flag, False) for flag in ("is_safe", "needs_autoescape", "expects_localtime")},
    )


class SandboxEngine(Engine):
    default_builtins = []


HTML_ENGINE = SandboxEngine(builtins=["playbooks.rendering"], loaders=[], autoescape=True)
TEXT_ENGINE = SandboxEngine(builtins=["playbooks.rendering"], loaders=[], autoescape=False)

SAMPLE_CONTEXT = {
    "account": {"name": "Example Ltd", "external_id": "acc-1", "plan": "pro", "mrr": 100, "attributes": {}},
    "contact": {"name": "Ada Lovelace", "first_name": "Ada", "email": "ada@example.com", "attributes": {}},
    "owner": {"name": "Casey CSM", "first_name": "Casey", "email": "casey@example.com"},
    "stage": {"key": "onboarding", "name": "Onboarding"},
    "health": {"score": 72.0, "colour": "green"},
}


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=512)
def _compiled(source, html):
    # A step's templates are rendered once per recipient: compile each once (templates render thread-safely).
    return (HTML_ENGINE if html else TEXT_ENGINE).from_string(source)


def render(source, context, *, html=False):
    """Render one template string; a TemplateError says why it cannot be."""
    try:
        return _compiled(source or "", html).render(Context(context, autoescape=html))
    except (TemplateSyntaxError, VariableDoesNotExist, TypeError, ValueError, AttributeError) as exc:
        raise TemplateError(str(exc)) from exc


def template_check(source, *, html=False):
    """Compile and render `source` with sample data; raises TemplateError."""
    render(source, SAMPLE_CONTEXT, html=html)


def first_name(name):
    return (name or "").split(" ")[0]


def render_context(*, account, contact=None, owner=None, stage=None, health=None):
    """The variables a template sees, as plain data."""
    return {
        "account": {
            "name": account.name,
            "external_id": account.external_id,
            "domain": account.domain,
            "plan": account.plan,
            "mrr": account.mrr,
            "currency": account.currency,
            "signup_date": account.signup_date,
            "trial_ends_at": account.trial_ends_at,
            "renewal_date": account.renewal_date,
            "attributes": dict(account.attributes or {}),
        },
        "contact": {
            "name": contact.name,
            "first_name": first_name(contact.name),
            "email": contact.email,
            "title": contact.title,
            "role": contact.role,
            "attributes": dict(contact.attributes or {}),
        }
        if contact
        else {},
        "owner": {"name": owner.name or owner.email, "first_name": first_name(owner.name), "email": owner.email}
        if owner
        else {},
        "stage": {"key": stage.key, "name": stage.name} if stage else {},
        "health": {"score": health.score, "colour": health.colour} if health else {},
    }
