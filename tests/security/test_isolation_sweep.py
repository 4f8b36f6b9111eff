"""Another tenant's key or member gets nothing of tenant A, on every operation the API documents.

The operations come from the OpenAPI schema, so an endpoint added later is
swept without touching this file. Tenant B calls each one with A's ids and
keys in the path, in the query string and in the body's related fields.
"""

import itertools
import json
import re

import pytest
from django.db.models import ForeignKey
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from csplatform.tenancy.models import Membership, Role, TenantModel, User
from tests.conftest import make_api_client
from tests.factories import MembershipFactory, TenantFactory, UserFactory

from .conftest import record_figure
from .world import MARKER, build_world, tenant_models, tenant_rows

REFUSED = {400, 403, 404}
# Upserts keyed by the tenant's own external id: B sending A's external id
# creates B's own row (external ids are unique per tenant), which is correct.
TENANT_LOCAL_UPSERTS = {"/api/v1/accounts/by-external-id/{external_id}/", "/api/v1/contacts/by-external-id/{external_id}/"}


@pytest.fixture(autouse=True)
def unthrottled(monkeypatch):
    """The sweep sends thousands of requests with one key; the throttle has its own test."""
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {ApiKeyRateThrottle.scope: None})


def operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation, components


def primary_keys(tenant):
    return {pk for model in tenant_models() for pk in model.objects.for_tenant(tenant).values_list("pk", flat=True)}


def a_references(world, tenant_b):
    """A's identifiers, by kind: primary keys of A's rows and key-like strings.

    A key that B's own rows also use (in any table) is left out: B is
    entitled to its own row with that key.
    """
    tenant = world["tenant"]
    pks = sorted(primary_keys(tenant) - primary_keys(tenant_b))
    strings = {
        "account": world["account"].external_id,
        "contact": world["contact"].external_id,
        "stage": world["stages"][0].key,
        "metric": f"{MARKER}_logins",
        "email": world["admin"].email,
        "slug": tenant.slug,
    }
    return pks, strings


def a_markers(world):
    """Strings only A owns: any of them in B's answer is a leak (unless B sent it)."""
    tenant = world["tenant"]
    markers = set()
    for model in tenant_models():
        for row in model.objects.for_tenant(tenant).values():
            markers.update(v for v in row.values() if isinstance(v, str) and MARKER in v.lower())
    markers.update({tenant.slug, tenant.name, world["admin"].email, world["admin"].name})
    return markers


def leaks(response, markers, sent):
    body = response.content.decode("utf-8", "replace")
    return sorted(m for m in markers if m in body and m not in sent)


def resolve(schema, components):
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def reference_for(name, strings):
    """Which of A's identifiers a field or parameter called `name` most likely takes."""
    name = name.lower()
    for hint, kind in (
        ("email", "email"), ("owner", "email"), ("user", "email"), ("contact", "contact"), ("account", "account"),
        ("stage", "stage"), ("cycle", "stage"), ("metric", "metric"), ("source", "metric"), ("key", "stage"),
        ("tenant", "slug"),
    ):
        if hint in name:
            return strings[kind]
    return None


def body_for(schema, components, pks, strings, depth=0):
    """A request body shaped by the schema whose related fields all name A's objects."""
    schema = resolve(schema, components)
    if depth > 4:
        return None
    kind = schema.get("type")
    if "oneOf" in schema or "allOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("allOf") or schema.get("anyOf")
        return body_for(options[0], components, pks, strings, depth + 1)
    if kind == "object" or "properties" in schema:
        body = {}
        for name, prop in schema.get("properties", {}).items():
            prop = resolve(prop, components)
            if prop.get("readOnly"):
                continue
            ref = reference_for(name, strings)
            if prop.get("type") == "integer" and ref is not None:
                body[name] = pks[0]
            elif prop.get("type") == "string" and ref is not None:
                body[name] = ref
            elif prop.get("type") == "array" and ref is not None:
                body[name] = [ref]
            else:
                body[name] = body_for(prop, components, pks, strings, depth + 1)
        return body
    if kind == "array":
        return [body_for(schema.get("items", {}), components, pks, strings, depth + 1)]
    if "enum" in schema:
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True, "string": "x"}.get(kind)


def json_body(operation, components, pks, strings):
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return body_for(content["application/json"]["schema"], components, pks, strings)


def path_values(param, pks, strings):
    if param["schema"].get("type") == "integer":
        return pks
    hinted = reference_for(param["name"], strings)
    return [hinted] if hinted else sorted(set(strings.values()))


def cross_tenant_references():
    """Rows whose foreign key points at another tenant's row, or at a user who is not a member."""
    members = set(Membership.objects.dangerously_all_tenants().values_list("user_id", "tenant_id"))
    found = []
    for model in tenant_models():
        for field in model._meta.concrete_fields:
            if not isinstance(field, ForeignKey) or field.name == "tenant":
                continue
            target = field.related_model
            rows = model.objects.dangerously_all_tenants().filter(**{f"{field.name}__isnull": False})
            if issubclass(target, TenantModel):
                column = f"{field.name}__tenant_id"
                bad = [r for r in rows.values("pk", "tenant_id", column) if r["tenant_id"] != r[column]]
            elif target is User:
                pairs = rows.values("pk", "tenant_id", field.attname)
                bad = [r for r in pairs if (r[field.attname], r["tenant_id"]) not in members]
            else:
                continue
            found.extend(f"{model._meta.label}.{field.name} row {r['pk']}" for r in bad)
    return found


@pytest.fixture
def world(db):
    return build_world()


@pytest.fixture
def tenant_b(db):
    return TenantFactory(slug="bravo-sweep", name="Bravo Sweep")


def test_tenant_b_gets_nothing_of_tenant_a_from_any_api_operation(world, tenant_b):
    """1. Path parameters: every A id or key in every operation answers 400/403/404.
    2. Query parameters: lists filtered by A's ids come back without A's data.
    3. Bodies: related fields naming A's objects never link B's rows to A's.
    Throughout: no answer shows A's names or keys, A's rows stay byte for byte
    the same, and no row anywhere references another tenant's row.
    """
    client = make_api_client(tenant_b)
    pks, strings = a_references(world, tenant_b)
    markers = a_markers(world)
    before = tenant_rows(world["tenant"])
    problems, tried = [], 0
    ops = list(operations())
    assert len(ops) > 20, "the schema lists too few operations to be the real API"

    def call(method, url, body=None, params=None):
        nonlocal tried
        tried += 1
        response = client.generic(
            method.upper(),
            url,
            json.dumps(body) if body is not None else "",
            content_type="application/json",
            QUERY_STRING="&".join(f"{k}={v}" for k, v in (params or {}).items()),
        )
        sent = f"{url} {params} {json.dumps(body)}"
        leaked = leaks(response, markers, sent)
        if response.status_code >= 500 or leaked:
            problems.append(f"{method.upper()} {url} {params or ''} -> {response.status_code} leaked {leaked}")
        return response

    later = []
    for path, method, operation, components in ops:
        path_params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
        if not path_params or path in TENANT_LOCAL_UPSERTS:
            later.append((path, method, operation, components))
            continue
        body = json_body(operation, components, pks, strings)
        choices = [path_values(p, pks, strings) for p in path_params]
        for values in itertools.product(*choices):
            url = path
            for param, value in zip(path_params, values):
                url = url.replace("{" + param["name"] + "}", str(value))
            response = call(method, url, body)
            if response.status_code not in REFUSED:
                problems.append(f"{method.upper()} {url} -> {response.status_code}, expected one of {sorted(REFUSED)}")

    query_values = [str(pk) for pk in pks] + sorted(set(strings.values()))
    for path, method, operation, components in later:
        if method == "get":
            for param in (p for p in operation.get("parameters", []) if p["in"] == "query"):
                for value in query_values:
                    call(method, path, params={param["name"]: value})
        elif path in TENANT_LOCAL_UPSERTS or method in ("post", "put", "patch"):
            url = path.replace("{external_id}", strings["account"] if "accounts" in path else strings["contact"])
            call(method, url, json_body(operation, components, pks, strings))

    record_figure("isolation sweep: API requests tried", tried)
    assert problems == [], "\n".join(problems)
    assert tenant_rows(world["tenant"]) == before, "tenant B's requests changed tenant A's rows"
    assert cross_tenant_references() == []


def page_routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from page_routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and prefix.startswith("t/<slug:tenant_slug>/"):
            yield prefix + str(entry.pattern)


ROUTE_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def route_args(route):
    return [(conv or "str", name) for conv, name in ROUTE_ARG.findall(route) if name != "tenant_slug"]


def identifies_objects(route):
    """Whether the route names a tenant's object (an id or key), not a token such as an invitation's."""
    return any(conv == "int" or name in ("key", "external_id") for conv, name in route_args(route))


def fill_route(route, slug, pks, strings):
    """Every URL of this route with the tenant slug given and each of A's ids in its other arguments."""
    args = route_args(route)
    choices = [pks if conv == "int" else sorted(set(strings.values())) for conv, _ in args]
    for values in itertools.product(*choices):
        filled = iter(values)
        yield "/" + ROUTE_ARG.sub(
            lambda m: slug if m.group(2) == "tenant_slug" else str(next(filled)), route
        )


def test_tenant_b_members_get_nothing_of_tenant_a_from_any_page(world, tenant_b, client):
    """B's admin visits every tenant page with A's ids, under B's slug and under A's: always 404, never A's data."""
    charlie = UserFactory(email="sweeper@bravo.example")
    MembershipFactory(tenant=tenant_b, user=charlie, role=Role.ADMIN)
    client.force_login(charlie)
    pks, strings = a_references(world, tenant_b)
    markers = a_markers(world)
    problems, tried = [], 0
    routes = list(page_routes())
    assert routes, "no tenant pages are routed"
    before = tenant_rows(world["tenant"])
    for route in routes:
        slugs = [tenant_b.slug, world["tenant"].slug] if route_args(route) else [world["tenant"].slug]
        for slug in slugs:
            for url in fill_route(route, slug, pks, strings):
                statuses = set()
                for method in ("get", "post"):
                    tried += 1
                    response = getattr(client, method)(url)
                    statuses.add(response.status_code)
                    leaked = leaks(response, markers, url)
                    if leaked:
                        problems.append(f"{method.upper()} {url} -> {response.status_code} leaked {leaked}")
                # A page that takes only POST may answer GET with 405 before it looks at the tenant.
                # Token routes (an invitation's join link) are public by design; they may answer, never leak.
                if (identifies_objects(route) or not route_args(route)) and (
                    404 not in statuses or not statuses <= {404, 405}
                ):
                    problems.append(f"GET/POST {url} -> {sorted(statuses)}, expected 404")
    record_figure("isolation sweep: page requests tried", tried)
    assert problems == [], "\n".join(problems)
    assert tenant_rows(world["tenant"]) == before, "tenant B's member changed tenant A's rows"
    assert cross_tenant_references() == []
