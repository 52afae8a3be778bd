"""Tagbase settings: every value comes from the environment (see docs/settings.md).

SQLite under ``TAGBASE_DATA_DIR`` is the default; ``DATABASE_URL`` selects PostgreSQL.
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

import dj_database_url

from tagbase.lib import logmask
from tagbase.lib.env import (
    SettingError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent

DATA_DIR = Path(env_str("TAGBASE_DATA_DIR", "./var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# The site is served over HTTPS by a proxy in front of gunicorn: production (see the Security
# section below and docs/howto/run-in-production.md).
TAGBASE_HTTPS = env_bool("TAGBASE_HTTPS", False)


def _secret_key() -> str:
    """Take SECRET_KEY from the environment; in development keep a generated one in the data dir.

    In production (TAGBASE_HTTPS) it is required: a key generated per machine would make a
    session valid only on the machine that created it, and would be lost with the data dir.
    """
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    if TAGBASE_HTTPS:
        raise SettingError(
            "SECRET_KEY: must be set when TAGBASE_HTTPS=true (production); generate one with "
            'python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
# `tagbase check --deploy` refuses a generated key (tagbase.web.security, tagbase.E001).
TAGBASE_SECRET_KEY_GENERATED = not env_str("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # ninja's own templates and static files: /api/v1/docs then loads Swagger UI from this
    # site rather than from a CDN, with no inline script (the CSP allows only 'self').
    "ninja",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "tagbase.accounts",
    "tagbase.customers",
    "tagbase.audiences",
    "tagbase.segments",
    "tagbase.campaigns",
    "tagbase.imports",
    "tagbase.sets",
    "tagbase.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so static files get the same headers as pages (CSP, frame-ancestors…).
    "tagbase.web.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tagbase.urls"
WSGI_APPLICATION = "tagbase.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tagbase.web.context_processors.navigation",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
_default_sqlite = f"sqlite:///{DATA_DIR / 'tagbase.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", _default_sqlite)
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except ValueError as exc:  # pragma: no cover - exercised through the settings test
    raise SettingError(f"DATABASE_URL: {exc}") from None

if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["CONN_MAX_AGE"] = 0  # SQLite connections are cheap; a fresh one sees the newest schema
    _db["OPTIONS"] = {
        # One writer at a time: take the write lock when a transaction starts, so that two
        # writers queue on the busy timeout instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("TAGBASE_SQLITE_BUSY_TIMEOUT", 30, minimum=1),
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA foreign_keys=ON;"
            # A bounded 64 MB page cache. Sorts and temporary b-trees stay in temp files and
            # the database is not memory-mapped: both would make a 10M-line import's memory
            # grow with the file (measured: 1,023 MB at 10M lines; see bench/README.md).
            "PRAGMA cache_size=-65536;"
        ),
    }
elif _db["ENGINE"] in {"django.db.backends.postgresql"}:
    _db.setdefault("OPTIONS", {})
else:
    raise SettingError(
        f"DATABASE_URL: unsupported engine {_db['ENGINE']!r} (use sqlite or postgres)"
    )
_db["TEST"] = {"NAME": env_str("TAGBASE_TEST_DATABASE_NAME", "") or None}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "audiences:audience_list"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env_str("TAGBASE_LANGUAGE", "en")
LANGUAGES = [("en", "English"), ("ru", "Русский")]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("TAGBASE_STATIC_ROOT", str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Plain storage: WhiteNoise serves from the app folders (finders) in development and
        # from STATIC_ROOT after `tagbase collectstatic` in production; no manifest to build.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Background work ------------------------------------------------------------------------
TASKS = {
    "default": {
        "BACKEND": (
            "django_tasks.backends.immediate.ImmediateBackend"
            if env_bool("TAGBASE_TASKS_IMMEDIATE", False)
            else "django_tasks_db.DatabaseBackend"
        ),
        "QUEUES": ["default"],
    }
}

# --- Tagbase --------------------------------------------------------------------------------
TAGBASE_DEFAULT_PHONE_REGION = env_str("TAGBASE_DEFAULT_PHONE_REGION", "RU").upper()
# Largest number of identifiers one API call or one paste may carry.
TAGBASE_MAX_IDS_PER_REQUEST = env_int("TAGBASE_MAX_IDS_PER_REQUEST", 10_000, minimum=1)
# Rows per set-based statement when memberships change (sized for ~0.2 s per chunk).
TAGBASE_MEMBERSHIP_CHUNK = env_int("TAGBASE_MEMBERSHIP_CHUNK", 50_000, minimum=1)
TAGBASE_PAGE_SIZE = env_int("TAGBASE_PAGE_SIZE", 50, minimum=1)
# Imports (see docs/imports.md)
TAGBASE_IMPORT_DIR = DATA_DIR / "imports"
TAGBASE_IMPORT_MAX_BYTES = env_int("TAGBASE_IMPORT_MAX_BYTES", 1024**3, minimum=1)
TAGBASE_IMPORT_MAX_LINE_BYTES = env_int("TAGBASE_IMPORT_MAX_LINE_BYTES", 65536, minimum=256)
TAGBASE_IMPORT_BATCH_ROWS = env_int("TAGBASE_IMPORT_BATCH_ROWS", 50_000, minimum=1)
TAGBASE_IMPORT_MAX_AUDIENCES_PER_FILE = env_int(
    "TAGBASE_IMPORT_MAX_AUDIENCES_PER_FILE", 10_000, minimum=1
)
TAGBASE_IMPORT_MAX_NEW_AUDIENCES = env_int("TAGBASE_IMPORT_MAX_NEW_AUDIENCES", 1000, minimum=0)
TAGBASE_IMPORT_RETENTION_DAYS = env_int("TAGBASE_IMPORT_RETENTION_DAYS", 30, minimum=1)
# Scheduled audience exports write their files here (see docs/exports.md).
TAGBASE_EXPORT_DIR = Path(env_str("TAGBASE_EXPORT_DIR", str(DATA_DIR / "exports"))).resolve()
# A worker owns a job for this long after its last heartbeat; then another may take it over.
TAGBASE_JOB_LEASE_SECONDS = env_int("TAGBASE_JOB_LEASE_SECONDS", 120, minimum=1)
# How often each worker looks for jobs whose worker died (expired lease) to re-enqueue them.
TAGBASE_SWEEP_SECONDS = env_float("TAGBASE_SWEEP_SECONDS", 15.0, minimum=0.05)
TAGBASE_LOG_LEVEL = env_choice(
    "TAGBASE_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)

# --- Security (production values; `tagbase check --deploy` is clean with the environment of
# docs/howto/run-in-production.md; tagbase/web/security.py adds the CSP and Tagbase's checks)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
# Sessions end after this long, however active: the pages hold customers' personal data.
SESSION_COOKIE_AGE = env_int("TAGBASE_SESSION_SECONDS", 12 * 3600, minimum=60)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = TAGBASE_HTTPS
CSRF_COOKIE_SECURE = TAGBASE_HTTPS
SECURE_SSL_REDIRECT = TAGBASE_HTTPS
SECURE_HSTS_SECONDS = env_int("TAGBASE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TAGBASE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("TAGBASE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TAGBASE_HTTPS else None
# Reverse proxies in front of gunicorn that append the client's address to X-Forwarded-For;
# the login rate limit counts per client address (tagbase.lib.ratelimit.client_ip).
TAGBASE_TRUSTED_PROXIES = env_int("TAGBASE_TRUSTED_PROXIES", 0, minimum=0)

# Rate limits (fixed windows counted in the cache below; 0 turns a limit off). The API default
# is above the throughput quality.md promises one partner (300 reads/s): it stops runaway
# clients, not busy ones.
TAGBASE_API_RATE_LIMIT = env_int("TAGBASE_API_RATE_LIMIT", 60_000, minimum=0)
TAGBASE_LOGIN_RATE_LIMIT = env_int("TAGBASE_LOGIN_RATE_LIMIT", 10, minimum=0)
TAGBASE_LOGIN_RATE_WINDOW_SECONDS = env_int("TAGBASE_LOGIN_RATE_WINDOW_SECONDS", 900, minimum=1)


def _cache(value: str) -> dict[str, str]:
    """Django's cache from TAGBASE_CACHE: ``locmem`` (per process), ``database`` (the
    ``tagbase_cache`` table, which ``tagbase migrate`` makes) or a ``redis://`` URL."""
    if value == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tagbase"}
    if value == "database":
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "tagbase_cache",
        }
    if value.startswith(("redis://", "rediss://", "unix://")):
        if importlib.util.find_spec("redis") is None:
            raise SettingError(
                "TAGBASE_CACHE: a redis:// cache needs the redis package: pip install redis"
            )
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": value}
    raise SettingError(
        f"TAGBASE_CACHE={value!r}: expected locmem, database or a redis://host:port/db URL"
    )


TAGBASE_CACHE = env_str("TAGBASE_CACHE", "locmem").strip()
CACHES = {"default": _cache(TAGBASE_CACHE)}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TAGBASE_MAX_REQUEST_BYTES", 20 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 20_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": TAGBASE_LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# E-mail addresses and phone numbers are masked in every log record of every logger (Django's,
# gunicorn's access log, Tagbase's), whatever the handlers: see tagbase/lib/logmask.py.
logmask.install(TAGBASE_DEFAULT_PHONE_REGION)
TAGBASE_SEGMENT_METRICS_SECONDS = env_int("TAGBASE_SEGMENT_METRICS_SECONDS", 21_600, minimum=60)

# Campaigns (see docs/campaigns.md)
# Customers one campaign step handles in one transaction (more wait for the next step).
TAGBASE_CAMPAIGN_STEP_SIZE = env_int("TAGBASE_CAMPAIGN_STEP_SIZE", 50_000, minimum=1)
# The class that sends campaign SMS and push messages; the default only records them.
TAGBASE_CAMPAIGN_GATEWAY = env_str(
    "TAGBASE_CAMPAIGN_GATEWAY", "tagbase.campaigns.outbox.OutboxGateway"
)
# E-mail (campaign messages and manager notifications) through Django's mail backend.
EMAIL_BACKEND = env_str("TAGBASE_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "tagbase@localhost")
