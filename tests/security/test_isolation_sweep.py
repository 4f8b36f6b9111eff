"""Another tenant's key or member gets nothing of tenant A, on every operation the API documents.

The operations come from the OpenAPI schema, so an endpoint added later is
swept without touching this file. Tenant B, which owns a world of its own,
calls each one with A's ids and keys in the path, in the query string and in
the body's related fields, and with B's own objects in the path and one of
A's objects in one related field of the body.
"""

import copy
import itertools
import json
import re

import pytest
from django.db import connection
from django.db.models import ForeignKey
from django.db.models.fields import AutoFieldMixin
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from csplatform.tenancy.models import Membership, TenantModel, User
from tests.conftest import make_api_client

from .conftest import record_figure
from .world import MARKER, build_world, tenant_models, tenant_rows

# Another tenant's id is not found (404) or not a valid choice (400); a 403 would confirm that it exists.
REFUSED = {400, 404}
# Upserts keyed by the tenant's own external id: B sending A's external id
# creates B's own row (external ids are unique per tenant), which is correct.
TENANT_LOCAL_UPSERTS = {"/api/v1/accounts/by-external-id/{external_id}/", "/api/v1/contacts/by-external-id/{external_id}/"}
# Event ingest creates the accounts and contacts it does not know, by the same tenant-local external ids.
TENANT_LOCAL_INGEST = {"/api/v1/events/batch/"}
# A word in a field's or parameter's name and the kind of object it names; the first match wins.
RELATED = (
    ("owner", "user"), ("user", "user"), ("contact", "contact"), ("account", "account"), ("cycle", "stage"),
    ("stage", "stage"), ("keys", "stage"), ("segment", "segment"), ("playbook", "playbook"), ("rule", "alert_rule"),
    ("metric", "metric"), ("source", "metric"), ("scorecard", "scorecard"),
)
# The field a string names each kind of object by; the other kinds go by `key`.
NATURAL_KEYS = {"user": "email", "account": "external_id", "contact": "external_id", "scorecard": "name"}
# Valid strings of each format, so that a body is refused for its reference, not for a malformed date.
STRING_SAMPLES = {
    "date": "2026-01-15",
    "date-time": "2026-01-15T12:00:00Z",
    "decimal": "10.00",
    "email": "someone@bravo.example",
    "uri": "https://bravo.example/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
# References the schema cannot show, inside a playbook's free-form trigger: (trigger type, kind named).
TRIGGER_REFERENCES = (("segment_entered", "segment"), ("stage_entered", "stage"))


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


def related_kind(name):
    name = name.lower()
    return next((kind for hint, kind in RELATED if hint in name), None)


def references(world):
    """The world's object of each related kind, as an integer names it (its pk) and as a string does."""
    objects = {kind: world[kind] for kind in ("account", "contact", "scorecard", "metric", "segment", "alert_rule")}
    # The second stage: a stage's `cycle_to` may name any stage but itself, the first.
    objects.update(user=world["admin"], stage=world["stages"][1], playbook=world["playbook"])
    return {
        kind: {"integer": obj.pk, "string": getattr(obj, NATURAL_KEYS.get(kind, "key"))}
        for kind, obj in objects.items()
    }


def a_references(world, tenant_b):
    """A's identifiers: the primary keys of A's rows, and A's keys, external ids, email and slug.

    A primary key that one of B's rows also has (in any table) is left out:
    B is entitled to its own row.
    """
    pks = sorted(primary_keys(world["tenant"]) - primary_keys(tenant_b))
    return pks, sorted({ref["string"] for ref in references(world).values()} | {world["tenant"].slug})


def a_markers(world):
    """Strings only A owns: any of them in B's answer is a leak (unless B sent it).

    Each is longer than the marker alone, so that no random token on a page (a CSRF token) matches by chance.
    """
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


def resolve_schema(schema, components):
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def reference_for(name, schema_type, refs):
    """The object of `refs` that a field or parameter called `name` names, in its type's form; None if none."""
    kind = related_kind(name)
    if kind is None or schema_type not in ("integer", "string", "array"):
        return None
    if schema_type == "integer":
        return refs[kind]["integer"]
    return [refs[kind]["string"]] if schema_type == "array" else refs[kind]["string"]


def body_for(schema, components, refs, depth=0):
    """A request body shaped by the schema whose related fields all name objects of `refs`."""
    schema = resolve_schema(schema, components)
    if depth > 4:
        return None
    kind = schema.get("type")
    if "oneOf" in schema or "allOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("allOf") or schema.get("anyOf")
        return body_for(options[0], components, refs, depth + 1)
    if kind == "object" or "properties" in schema:
        body = {}
        for name, prop in schema.get("properties", {}).items():
            prop = resolve_schema(prop, components)
            if prop.get("readOnly"):
                continue
            ref = reference_for(name, prop.get("type"), refs)
            body[name] = ref if ref is not None else body_for(prop, components, refs, depth + 1)
        return body
    if kind == "array":
        return [body_for(schema.get("items", {}), components, refs, depth + 1)]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "string":
        return STRING_SAMPLES.get(schema.get("format"), "x")
    return {"integer": 1, "number": 1, "boolean": True}.get(kind)


def json_body(operation, components, refs):
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return body_for(content["application/json"]["schema"], components, refs)


def related_places(body, place=()):
    """Where a body holds a related field: key paths such as ("items", 0, "owner")."""
    if isinstance(body, dict):
        for name, value in body.items():
            if related_kind(name) and isinstance(value, (int, str, list)) and not isinstance(value, bool):
                yield (*place, name)
            else:
                yield from related_places(value, (*place, name))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from related_places(value, (*place, index))


def with_reference(body, place, refs):
    """A copy of the body whose field at `place` names the object of `refs` instead, in the same form."""
    body = copy.deepcopy(body)
    parent = body
    for step in place[:-1]:
        parent = parent[step]
    current = parent[place[-1]]
    schema_type = "integer" if isinstance(current, int) else "array" if isinstance(current, list) else "string"
    parent[place[-1]] = reference_for(place[-1], schema_type, refs)
    return body


def refuses(response, place):
    """A 404, or a validation error that names the field at `place`: a 400's `error.fields`,
    or a batch's 200 (each item on its own) whose `errors` reject the item.

    Naming the field matters: the rest of a generated body may be invalid too.
    """
    if response.status_code == 404:
        return True
    field = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in place).lstrip(".")
    answer = response.json() if response.status_code in (200, 400) else {}
    errors = answer.get("error", {}).get("fields", []) if response.status_code == 400 else answer.get("errors", [])
    return any(error.get("field") == field for error in errors)


def one_at_a_time(every, few):
    """Value combinations for several arguments: each argument in turn takes every one of its values in
    `every` while the others take theirs in `few` (A's main objects).

    The full product of A's ids in every position grows with the power of their count, and the
    count grows with every table's sequence over a whole run of the suite.
    """
    combinations = set()
    for position in range(len(every)):
        combinations.update(itertools.product(*(every[i] if i == position else few[i] for i in range(len(every)))))
    return sorted(combinations, key=str) if every else [()]


def field_values(tenant, name):
    """A's values of every field called `name`: a version's `number` in a scorecard's path."""
    return sorted(
        {
            value
            for model in tenant_models()
            if any(field.name == name for field in model._meta.concrete_fields)
            for value in model.objects.for_tenant(tenant).values_list(name, flat=True)
        }
    )


def parameter_kind(before, name):
    """The kind of object a path parameter names: by its own name (`account_id`), else by the collection
    before it (`/accounts/{id}`); `before` is the path up to the parameter."""
    return related_kind(name) or related_kind(before.rstrip("/").rsplit("/", 2)[-2])


def path_values(path, param, a_ids, refs):
    """A's values for a path parameter, every one of them and the one its main object takes.

    An id takes all of A's primary keys; another integer, A's values of the field it is named after;
    a key, the key of the object the path names (else every one of A's keys).
    """
    pks, strings, tenant = a_ids
    kind = parameter_kind(path.split("{" + param["name"] + "}")[0], param["name"])
    if param["name"] == "id" or param["schema"].get("type") == "integer":
        values = pks if param["name"] == "id" else field_values(tenant, param["name"]) or pks
        return values, refs[kind]["integer"] if kind and param["name"] == "id" else values[0]
    values = [refs[kind]["string"]] if kind else strings
    return values, values[0]


def own_url(path, operation, tenant):
    """The path with the tenant's own object in its one path parameter (itself when it has none); else None.

    The object is a row of the model served at the path up to that parameter,
    named by the parameter's field when the model has it, else by its pk.
    """
    params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
    if not params:
        return path
    if len(params) > 1:
        return None
    template_part = "{" + params[0] + "}"
    try:
        view = getattr(resolve(path.split(template_part)[0] + "0/").func, "cls", None)
    except Resolver404:
        return None
    model = getattr(getattr(view, "queryset", None), "model", None)
    row = model.objects.for_tenant(tenant).order_by("pk").first() if model else None
    if row is None:
        return None
    field = params[0] if params[0] != "id" and hasattr(row, params[0]) else "pk"
    return path.replace(template_part, str(getattr(row, field)))


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


def ids_from(first):
    """Have every tenant table give its next row the id `first`.

    A's rows then share a few ids across their tables, and B's start far beyond
    them: the sweep tries every id of every one of A's rows in each place with
    a few dozen ids, where the ids a run of the suite left would be spread over
    a few hundred, and no id of A's is left out for being one of B's too.
    """
    tables = [model._meta.db_table for model in tenant_models() if isinstance(model._meta.pk, AutoFieldMixin)]
    with connection.cursor() as cursor:
        for table in tables:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, first])
            else:
                cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
                cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, first - 1])


def ids_used():
    """The highest id any table's sequence has given."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT coalesce(max(last_value), 0) FROM pg_sequences")
        else:
            cursor.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence")
        return cursor.fetchone()[0]


@pytest.fixture
def world(db):
    ids_from(ids_used() + 1)
    return build_world()


@pytest.fixture
def world_b(world):
    ids_from(ids_used() + 1_000)
    return build_world("bravo")


def test_tenant_b_gets_nothing_of_tenant_a_from_any_api_operation(world, world_b):
    """1. Path parameters: every A id or key in every operation answers 404 or 400.
    2. Bodies: B's own object (or a new one) with one related field naming A's
       object answers 404 or a validation error of that field; a playbook
       trigger takes B's segment or stage and refuses A's.
    3. Query parameters: lists filtered by A's ids come back without A's data.
    Throughout: no answer shows A's names or keys, A's rows stay byte for byte
    the same, and no row anywhere references another tenant's row.
    """
    tenant_b = world_b["tenant"]
    client = make_api_client(tenant_b)
    theirs, mine = references(world), references(world_b)
    pks, strings = a_references(world, tenant_b)
    markers = a_markers(world)
    before = tenant_rows(world["tenant"])
    problems, tried, crossings = [], 0, 0
    ops = list(operations())
    assert len(ops) > 20, "the schema lists too few operations to be the real API"

    def call(method, url, body=None, params=None, expected=None):
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
        elif expected is not None and response.status_code not in expected:
            problems.append(f"{method.upper()} {url} {json.dumps(body)} -> {response.status_code}, expected {expected}")
        return response

    for path, method, operation, components in ops:
        path_params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
        if not path_params:
            continue
        body = json_body(operation, components, theirs)
        if path in TENANT_LOCAL_UPSERTS:
            # B's own row under A's external id may be written; nothing of A's may show.
            call(method, path.replace("{external_id}", theirs[related_kind(path)]["string"]), body)
            continue
        every, few = zip(*(path_values(path, p, (pks, strings, world["tenant"]), theirs) for p in path_params))
        for values in one_at_a_time(every, [[value] for value in few]):
            url = path
            for param, value in zip(path_params, values):
                url = url.replace("{" + param["name"] + "}", str(value))
            call(method, url, body, expected=REFUSED)

    for path, method, operation, components in ops:
        writes = method in ("post", "put", "patch") and path not in TENANT_LOCAL_INGEST
        url = own_url(path, operation, tenant_b) if writes else None
        body = json_body(operation, components, mine) if url else None
        for place in related_places(body):
            crossed = with_reference(body, place, theirs)
            crossings += 1
            response = call(method, url, crossed)
            if not refuses(response, place):
                problems.append(f"{method.upper()} {url} {json.dumps(crossed)} -> {response.status_code}, not refused")

    playbook = f"/api/v1/playbooks/{mine['playbook']['string']}/"
    for trigger_type, kind in TRIGGER_REFERENCES:
        for refs, expected in ((mine, {200}), (theirs, REFUSED)):
            trigger = {"trigger_type": trigger_type, "trigger_config": {kind: refs[kind]["string"]}}
            call("patch", playbook, trigger, expected=expected)

    for path, method, operation, components in ops:
        if method != "get" or any(p["in"] == "path" for p in operation.get("parameters", [])):
            continue
        for param in (p for p in operation.get("parameters", []) if p["in"] == "query"):
            kind, schema_type = related_kind(param["name"]), param["schema"].get("type")
            values = theirs[kind].values() if kind else strings if schema_type == "string" else ()
            for value in values:
                # An unknown cursor is not found (404).
                call(method, path, params={param["name"]: value}, expected={200, 400, 404})

    record_figure("isolation sweep: API requests tried", tried)
    record_figure("isolation sweep: B's writes naming one of A's objects", crossings)
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
    """(converter, name, the route up to it) of each argument but the tenant slug."""
    return [
        (match.group(1) or "str", match.group(2), route[: match.start()])
        for match in ROUTE_ARG.finditer(route)
        if match.group(2) != "tenant_slug"
    ]


def identifies_objects(route):
    """Whether the route names a tenant's object (an id or key), not a token such as an invitation's."""
    return any(conv == "int" or name in ("key", "external_id") for conv, name, _ in route_args(route))


def fill_route(route, slug, ids, tenants_refs):
    """URLs of this route with the tenant slug given and A's ids in its other arguments.

    An argument alone takes each of A's `ids` (integers and strings) in turn. Where a route has
    several (a parent's id and a child's), one at a time does while the others name the object of
    their kind of each tenant in `tenants_refs` (B's own parent and A's: a view may miss either
    check), or each main object of the first (the slug's tenant) when their kind is not known.
    """
    args = route_args(route)
    every = [ids[0] if conv == "int" else ids[1] for conv, _, _ in args]
    few = []
    for conv, name, before in args:
        form = "integer" if conv == "int" else "string"
        kind = parameter_kind(before, name)
        named = [refs[kind] for refs in tenants_refs] if kind else list(tenants_refs[0].values())
        few.append(sorted({ref[form] for ref in named}, key=str))
    for values in one_at_a_time(every, few):
        filled = iter(values)
        yield "/" + ROUTE_ARG.sub(
            lambda m: slug if m.group(2) == "tenant_slug" else str(next(filled)), route
        )


def test_tenant_b_members_get_nothing_of_tenant_a_from_any_page(world, world_b, client):
    """B's admin visits every tenant page with each of A's ids under B's slug (beside B's own objects and
    A's where a route names several), and with A's main objects under A's slug: always 404, never A's data."""
    client.force_login(world_b["admin"])
    pks, strings = a_references(world, world_b["tenant"])
    theirs, mine = references(world), references(world_b)
    main_objects = ([ref["integer"] for ref in theirs.values()], [ref["string"] for ref in theirs.values()])
    markers = a_markers(world)
    problems, tried = [], 0
    routes = list(page_routes())
    assert routes, "no tenant pages are routed"
    before = tenant_rows(world["tenant"])
    for route in routes:
        # Under A's slug, B's member is refused before the view reads an id (`tenant_page`),
        # so A's main objects stand for all of A's ids there.
        visits = {world["tenant"].slug: (main_objects, [theirs])}
        if route_args(route):
            visits[world_b["tenant"].slug] = ((pks, strings), [mine, theirs])
        for slug, (ids, tenants_refs) in visits.items():
            for url in fill_route(route, slug, ids, tenants_refs):
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
