"""docker-compose.yml and the Dockerfile start real entry points of this project.

No Docker engine is needed: every command the containers would run is
resolved the way gunicorn, celery and manage.py resolve it.
"""

import importlib
import json
import re
import shlex
from urllib.parse import urlsplit

import pytest
import yaml
from celery.app.utils import find_app
from celery.bin.celery import celery as celery_cli
from django.conf import settings
from django.core.management import get_commands

from csplatform.celery import app as celery_app

APP_SERVICES = ("web", "worker", "beat")
INIT_DIR = "/docker-entrypoint-initdb.d/"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())


def shell_commands(command):
    """Split a container command into the simple commands it runs."""
    if isinstance(command, str):
        command = ["sh", "-c", command]
    if command[:1] == ["CMD-SHELL"]:
        command = ["sh", "-c", command[1]]
    elif command[:1] == ["CMD"]:
        command = command[1:]
    if command[:2] != ["sh", "-c"]:
        return [command]
    parts = re.split(r"&&|;|\|\|", command[2])
    words = [shlex.split(part) for part in parts if part.strip()]
    return [argv[1:] if argv[0] == "exec" else argv for argv in words]


def assert_resolves(argv):
    """Fail unless `argv` names a real entry point of this project."""
    program, *args = argv
    if program == "python" and args[:1] == ["manage.py"]:
        assert args[1] in get_commands(), f"no management command {args[1]!r}"
    elif program == "python" and args[:1] == ["-c"]:
        compile(args[1], "<healthcheck>", "exec")
    elif program == "gunicorn":
        module_name, _, attribute = args[0].partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute or "application"))
        if "-c" in args:
            config = args[args.index("-c") + 1]
            assert config.startswith("python:"), f"gunicorn's settings should be a module of ours, not {config!r}"
            assert "x-request-id" in importlib.import_module(config.removeprefix("python:")).access_log_format
    elif program == "celery":
        assert args[0] == "-A"
        assert find_app(args[1]) is celery_app
        assert args[2] in celery_cli.commands, f"no celery command {args[2]!r}"
    else:
        pytest.fail(f"unknown program in {argv}")


def test_compose_runs_postgres_redis_migrate_web_worker_and_beat(compose):
    services = compose["services"]

    assert set(services) == {"postgres", "redis", "migrate", *APP_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"


@pytest.mark.parametrize("name", ("migrate", *APP_SERVICES))
def test_every_app_service_command_resolves_to_a_project_entry_point(compose, name):
    service = compose["services"][name]

    for argv in shell_commands(service["command"]):
        assert_resolves(argv)
    if "healthcheck" in service:
        for argv in shell_commands(service["healthcheck"]["test"]):
            assert_resolves(argv)


def database_user(service):
    return urlsplit(service["environment"]["DATABASE_URL"]).username


def test_migrate_runs_once_as_the_tables_owner_before_the_app_services_start(compose):
    services = compose["services"]
    migrate = services["migrate"]

    assert shell_commands(migrate["command"]) == [["python", "manage.py", "migrate", "--noinput"]]
    assert migrate["restart"] == "no"
    assert database_user(migrate) == services["postgres"]["environment"]["POSTGRES_USER"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_connect_as_the_ordinary_role_not_the_postgres_superuser(compose, name):
    """The image makes POSTGRES_USER a superuser, which row-level security does not bind."""
    postgres = compose["services"]["postgres"]["environment"]
    user = database_user(compose["services"][name])

    assert user != postgres["POSTGRES_USER"]
    assert user == postgres["POSTGRES_APP_USER"]


def test_postgres_creates_the_app_role_without_superuser_or_bypassrls_on_first_start(compose):
    (script,) = [
        volume.split(":")[0] for volume in compose["services"]["postgres"]["volumes"] if INIT_DIR in volume
    ]
    source = (settings.BASE_DIR / script).read_text()
    (create_role,) = [line for line in source.splitlines() if line.startswith("CREATE ROLE")]

    assert 'CREATE ROLE :"app_user" LOGIN' in create_role
    assert "NOSUPERUSER NOBYPASSRLS" in create_role
    for variable in re.findall(r"\$([A-Z_]+)", source):
        assert variable in compose["services"]["postgres"]["environment"], f"{variable} is not set on postgres"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_settings_and_wait_for_healthy_backends(compose, name):
    service = compose["services"][name]
    settings_source = (settings.BASE_DIR / "csplatform" / "settings.py").read_text()

    assert service["environment"]["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]
    assert service["environment"]["REDIS_URL"].startswith("redis://redis:6379/")
    for variable in service["environment"]:
        # Secrets are read by env_secret("NAME"), which also honours NAME_FILE.
        name = variable.removesuffix("_FILE")
        assert f'"{name}"' in settings_source, f"{variable} is not read by settings"
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_backends_and_long_running_services_have_healthchecks(compose):
    for name in ("postgres", "redis", "web", "worker"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_dockerfile_runs_as_non_root_and_starts_a_project_entry_point():
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line and not line[0].isspace()]
    by_keyword = {}
    for keyword, *rest in instructions:
        by_keyword.setdefault(keyword, []).extend(rest)

    assert by_keyword["FROM"] == ["python:3.11-slim"]
    assert by_keyword["USER"] and by_keyword["USER"][-1] not in ("root", "0")
    assert "pip install ." in dockerfile
    assert "collectstatic" in dockerfile
    assert_resolves(json.loads(by_keyword["CMD"][-1]))
