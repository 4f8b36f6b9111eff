"""Browser-facing protections: CSRF on every form, secure cookies, HSTS, CSP, framing."""

import re
import runpy
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from csplatform.middleware import CONTENT_SECURITY_POLICY

from .conftest import record_figure

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
FORM_TAG = re.compile(r"<form\b[^>]*method=[\"']?post[\"']?[^>]*>(.*?)</form>", re.IGNORECASE | re.DOTALL)
ROUTE_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def page_urls(resolver=None, prefix=""):
    """Every routed page outside the API and the admin, with its arguments filled in."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from page_urls(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            if route.startswith(("api/", "admin/")) or route.startswith("^") or "^" in route:
                continue
            yield "/" + ROUTE_ARG.sub(lambda m: "1" if m.group(1) == "int" else "alpha", route)


def templates():
    roots = [Path(settings.BASE_DIR) / "templates"] + [
        Path(settings.BASE_DIR) / app / "templates" for app in ("csplatform", "lifecycle", "health", "alerts", "playbooks")
    ]
    return [path for root in roots if root.is_dir() for path in sorted(root.rglob("*.html"))]


def test_every_page_refuses_a_post_without_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    urls = sorted(set(page_urls()))
    assert "/login/" in urls
    refused = {url: client.post(url, {"x": "1"}).status_code for url in urls}
    record_figure("csrf: pages posted without a token", len(urls))
    assert {url: status for url, status in refused.items() if status != 403} == {}


def test_sign_in_without_csrf_token_is_refused_even_before_signing_in(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": alice.email, "password": "password"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_every_post_form_in_the_templates_carries_the_csrf_token():
    forms = [(path, body) for path in templates() for body in FORM_TAG.findall(path.read_text())]
    assert forms, "no POST forms found in the templates"
    assert [str(path) for path, body in forms if "{% csrf_token %}" not in body] == []


def test_no_template_contains_an_inline_script():
    """Scripts load from files (src=) or carry data (type="application/json"); the CSP forbids the rest."""
    inline = []
    for path in templates():
        for attributes, body in SCRIPT_TAG.findall(path.read_text()):
            if "src=" in attributes or 'type="application/json"' in attributes:
                continue
            inline.append(f"{path.relative_to(settings.BASE_DIR)}: <script{attributes}>{body.strip()[:40]}")
    assert inline == []
    assert not [
        str(path) for path in templates() if re.search(r"\son[a-z]+\s*=\s*[\"']", path.read_text(), re.IGNORECASE)
    ], "inline event handlers (onclick=...) are scripts too"


def test_pages_send_the_content_security_policy_and_refuse_framing(client, alice):
    client.force_login(alice)
    for url in ("/login/", "/", "/healthz"):
        response = client.get(url, follow=True)
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def production_settings(monkeypatch, **env):
    monkeypatch.setenv("DEBUG", "0")
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(Path(settings.BASE_DIR) / "csplatform" / "settings.py"))


def test_production_settings_mark_cookies_secure_and_send_hsts(monkeypatch):
    monkeypatch.delenv("CSP_SECURE_COOKIES", raising=False)
    production = production_settings(monkeypatch)
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["CSRF_COOKIE_SECURE"] is True
    assert production["SESSION_COOKIE_HTTPONLY"] is True
    assert production["SECURE_HSTS_SECONDS"] >= 31536000
    assert production["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True


def test_debug_settings_do_not_send_hsts(monkeypatch):
    debug = production_settings(monkeypatch, DEBUG="1")
    assert not debug.get("SECURE_HSTS_SECONDS")
    assert not debug.get("SESSION_COOKIE_SECURE")


@pytest.mark.parametrize("secure", [True, False])
def test_hsts_header_is_sent_on_https_only(client, settings, secure):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get("/healthz", secure=secure)
    assert ("Strict-Transport-Security" in response) is secure
