"""Settings read from the environment.

Without DATABASE_URL the project runs on SQLite under var/ and without
REDIS_URL on a filesystem broker, so a fresh checkout starts with no server
running. Production sets both (see docker-compose.yml).
"""

import os
from pathlib import Path

import dj_database_url
from django_guid.integrations import CeleryIntegration

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CSP_VAR_DIR", BASE_DIR / "var"))
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)


def env_bool(name, default=False):
    return os.environ.get(name, str(int(default))).strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name, default=None):
    """A secret from NAME, or from the file named by NAME_FILE (Docker secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not env_bool("CSP_ALLOW_DEV_SECRET", default=True):
        raise RuntimeError("SECRET_KEY (or SECRET_KEY_FILE) must be set")
    # A stable key for the embedded default; production sets SECRET_KEY. The
    # "django-insecure-" prefix makes `manage.py check --deploy` flag it.
    SECRET_KEY = "django-insecure-csp-dev-only-secret-key-change-me-for-any-real-deployment"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # django.contrib.admin, with a site that lets superusers see across tenants under RLS.
    "csplatform.tenancy.admin.PlatformAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_guid",
    "csplatform.tenancy",
    "csplatform.customers",
    "csplatform.rules",
    "lifecycle",
    "health",
    "alerts",
    "playbooks",
    # Last: the project package itself, home of the pipeline and its commands,
    # sits above every app.
    "csplatform",
]

MIDDLEWARE = [
    # First, so that every log line of the request names it.
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csplatform.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "csplatform.urls"
WSGI_APPLICATION = "csplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csplatform.context_processors.nav_counts",
            ],
        },
    },
]

SILENCED_SYSTEM_CHECKS = []

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'csplatform.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        # A kept connection is checked before each request reuses it, so one
        # that a database restart killed is replaced instead of failing a request.
        conn_health_checks=True,
    )
}
on_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if on_sqlite:
    # WAL and a busy timeout let the web server, worker and beat share one file.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # SQLite skips the covering (INCLUDE) indexes that PostgreSQL uses; it does not need them.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
else:
    # No JIT compilation: each query here reads a chunk of a tenant and takes milliseconds, while compiling one
    # takes hundreds, which PostgreSQL starts whenever its estimate runs high (a table not analysed yet).
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = " ".join(filter(None, [options.get("options"), "-c jit=off"]))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Accounts per chunk of a pipeline pass; each chunk commits on its own, and a pass holds one chunk per thread in memory.
CSP_PIPELINE_CHUNK_SIZE = int(os.environ.get("CSP_PIPELINE_CHUNK_SIZE", "2000"))
# Threads of one pipeline pass (csplatform/pipeline.py); SQLite takes one writer at a time.
CSP_PIPELINE_THREADS = int(os.environ.get("CSP_PIPELINE_THREADS", "1" if on_sqlite else "2"))
# Other worker processes asked to take part in each pass of a tenant with more than one chunk to do.
CSP_PIPELINE_HELPERS = int(os.environ.get("CSP_PIPELINE_HELPERS", "0" if on_sqlite else "1"))
# Emails per commit of the step runner, one SMTP connection each (playbooks/mail.py): more send faster,
# but a worker killed right after a group's commit can lose that group's emails.
CSP_SMTP_CONNECTIONS = int(os.environ.get("CSP_SMTP_CONNECTIONS", "1"))

AUTH_USER_MODEL = "tenancy.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The embedded default has several processes; a file cache is shared by all of them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Celery: Redis in production, kombu's filesystem transport otherwise. Never eager.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    _broker_dir = VAR_DIR / "broker"
    # kombu does not create these folders, and its control folder (broadcasts
    # such as `celery inspect`) would otherwise land in the working directory.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-dirty-accounts": {"task": "csplatform.sweep_dirty", "schedule": 60.0, "options": {"expires": 55}},
    "full-sweep": {"task": "csplatform.full_sweep", "schedule": 3600.0, "options": {"expires": 3000}},
    "playbook-steps": {"task": "playbooks.run_due", "schedule": 60.0, "options": {"expires": 55}},
    "playbook-date-triggers": {"task": "playbooks.enroll_dates", "schedule": 3600.0, "options": {"expires": 3000}},
    "webhook-deliveries": {"task": "alerts.webhooks_due", "schedule": 30.0, "options": {"expires": 25}},
    "alert-notifications": {"task": "alerts.notifications_due", "schedule": 60.0, "options": {"expires": 55}},
    "daily-digests": {"task": "csplatform.digests_due", "schedule": 300.0, "options": {"expires": 290}},
}
# What customers calls after it marks accounts dirty: the pipeline's scheduler.
CSP_ACCOUNTS_CHANGED_HOOK = "csplatform.tasks.schedule_recompute"
# What customers calls with the changes of accounts' owner or details it records: their webhooks.
CSP_ACCOUNT_CHANGES_HOOK = "alerts.account_events.account_updates_emit"
# And with the changes of contacts' details.
CSP_CONTACT_CHANGES_HOOK = "alerts.account_events.contact_updates_emit"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["csplatform.tenancy.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["csplatform.tenancy.api.permissions.HasApiKeyScope"],
    "DEFAULT_PARSER_CLASSES": ["csplatform.tenancy.api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["csplatform.tenancy.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("CSP_API_RATE", "6000/min")},
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "csplatform.tenancy.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "csplatform.tenancy.api.errors.exception_handler",
    # The schema at /api/schema/ describes every endpoint; OPTIONS answers 405.
    "DEFAULT_METADATA_CLASS": None,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "csplatform API",
    "DESCRIPTION": "Accounts, contacts, usage events, lifecycle, health, playbooks and alerts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two "subject" choice sets: what a metric counts, and what a segment holds.
    "ENUM_NAME_OVERRIDES": {
        "MetricSubjectEnum": "csplatform.rules.models.MetricSubject",
        "SegmentSubjectEnum": "alerts.models.Subject",
    },
}

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "csplatform <no-reply@localhost>")
# Links in emails (NPS answers) point here.
CSP_PUBLIC_URL = os.environ.get("CSP_PUBLIC_URL", "http://127.0.0.1:8000")
# A playbook step claimed longer ago than this belongs to a dead worker and is claimed again.
CSP_PLAYBOOK_STALE_SECONDS = int(os.environ.get("CSP_PLAYBOOK_STALE_SECONDS", "600"))
# Outbound webhooks and Slack: loopback and private addresses are refused unless allowed
# (a single-host install posting to a local service, tests).
CSP_WEBHOOK_ALLOW_PRIVATE = env_bool("CSP_WEBHOOK_ALLOW_PRIVATE")
CSP_WEBHOOK_TIMEOUT = int(os.environ.get("CSP_WEBHOOK_TIMEOUT", "10"))
# An endpoint that fails this many deliveries in a row is disabled and the tenant admins are told.
CSP_WEBHOOK_DISABLE_AFTER = int(os.environ.get("CSP_WEBHOOK_DISABLE_AFTER", "8"))

# GET /metrics (Prometheus) answers a scrape that sends this as a bearer token; unset, it is off.
CSP_METRICS_TOKEN = env_secret("CSP_METRICS_TOKEN", "")

# Ingest limits, shared by the batch API and the Segment-compatible API.
CSP_INGEST_MAX_ITEMS = 1000
CSP_INGEST_MAX_BYTES = 1024 * 1024
CSP_INGEST_MAX_FUTURE_SECONDS = 24 * 3600
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("CSP_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The TLS redirect is the proxy's job in the compose setup.
    SILENCED_SYSTEM_CHECKS.append("security.W008")

# Every request gets an id: the client's X-Request-ID when it is a UUID, else a new one. The answer
# names it, every log line of the request carries it, and so do the Celery tasks the request enqueues
# and their log lines, so an operator follows an API call into the worker.
DJANGO_GUID = {"GUID_HEADER_NAME": "X-Request-ID", "INTEGRATIONS": [CeleryIntegration()]}

# Logs go to stderr, one line per record: plain text, or one JSON object a line for a log collector.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise RuntimeError(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "csplatform.log.RequestId"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(processName)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(processName)s %(name)s %(request_id)s %(message)s",
            "timestamp": "time",
            "rename_fields": {"levelname": "level", "processName": "process", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-guid says at INFO how it found each id; the ids are in every line already.
    "loggers": {"django.db.backends": {"level": "INFO"}, "django_guid": {"level": "WARNING"}},
}
