import pytest

from playbooks.rendering import SAMPLE_CONTEXT, TemplateError, render, render_context, template_check
from tests.factories import AccountFactory


def test_html_templates_escape_customer_data_and_text_templates_do_not():
    context = {"account": {"name": "Fish & <Chips>"}}
    assert render("{{ account.name }}", context, html=True) == "Fish &amp; &lt;Chips&gt;"
    assert render("{{ account.name }}", context) == "Fish & <Chips>"


@pytest.mark.parametrize(
    "source",
    [
        "{% load static %}",
        "{% debug %}",
        '{% include "base.html" %}',
        '{% extends "base.html" %}',
        "{% now 'Y' %}",
        "{{ account.name|safe }}",
        "{{ account.name|pprint }}",
    ],
)
def test_tags_and_filters_that_reach_files_settings_or_unescaped_output_are_refused(source):
    with pytest.raises(TemplateError):
        template_check(source)


@pytest.mark.django_db
def test_templates_see_plain_data_only_never_models(tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob, name="Acme")
    context = render_context(account=account, owner=bob)
    assert render("{{ owner.password }}{{ account.delete }}{{ settings.SECRET_KEY }}", context) == ""
    assert render("{{ owner.first_name }} looks after {{ account.name }}", context) == "Bob looks after Acme"
    assert render("{{ contact.first_name|default:'there' }}", SAMPLE_CONTEXT) == "Ada"
