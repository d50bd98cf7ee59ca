"""Settings, all from the environment (see README "Configuration")."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from .env import database_from_url, env_bool, env_float, env_int, env_list, env_networks, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("AGENTSITE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the data dir."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "core",
    "accounts",
    "registry",
    "templates_app",
    "sessions.apps.ChatConfig",
    "usage",
    "inference",
    "agents",
    "web",
]

MIDDLEWARE = [
    "core.proxies.trusted_proxy_headers",  # first: X-Forwarded-Proto only from a trusted proxy
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.lockout.known_device_cookie",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.sync_chain",  # last: the chain runs sync, in one thread (see there)
]

ROOT_URLCONF = "agentsite.urls"
ASGI_APPLICATION = "agentsite.asgi.application"
WSGI_APPLICATION = "agentsite.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'agentsite.sqlite3'}"))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers proceed while a writer commits; IMMEDIATE avoids lock upgrades
        # failing mid-transaction under concurrent writers.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file (so live-server tests in a subprocess can share it), one per test run so that
    # concurrent runs in one checkout don't clobber each other.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
CHANNEL_LAYERS = (
    {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
    if REDIS_URL
    else {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["accounts.lockout.LockoutModelBackend"]
CACHES = (
    {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    if REDIS_URL
    else {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}


def _collected_is_current() -> bool:
    """collectstatic ran after static/ last changed (run.py collects at every start)."""
    collected = [p.stat().st_mtime for p in STATIC_ROOT.rglob("*") if p.is_file()]
    sources = [p.stat().st_mtime for p in (BASE_DIR / "static").rglob("*") if p.is_file()]
    return bool(collected) and max(collected) >= max(sources, default=0.0)


# The collected files when they are current: they carry the compressed (.gz) variants, which
# the finders' copies would replace. Otherwise straight from static/, never a stale copy.
WHITENOISE_USE_FINDERS = not _collected_is_current()

X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind TLS (docs/deploy.md): Secure cookies, HSTS, and HTTPS recognised only from a trusted proxy.
TRUSTED_PROXIES = env_networks("AGENTSITE_TRUSTED_PROXIES")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("AGENTSITE_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("AGENTSITE_HSTS_SECONDS", 0)
# Believed only from a trusted proxy: core.proxies.trusted_proxy_headers drops it from anyone else.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
MAX_BODY_BYTES = env_int("AGENTSITE_MAX_BODY_MB", 32) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.ScrubbingJSONRenderer"],  # secrets masked in every answer
    # JSON bodies only (docs/api.md); the skill upload adds multipart itself. Form bodies cannot
    # carry the nested fields (options, parameters, arguments), so they are 415, not half-read.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentsite API",
    "DESCRIPTION": "Compose any registered model with any tools per request.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The async /v1/infer, /v1/infer/stream, /v1/tools/call views and the error envelope (agentsite/schema.py).
    "PREPROCESSING_HOOKS": ["agentsite.schema.add_async_views"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentsite.schema.require_bodies",
        "agentsite.schema.add_error_responses",
    ],
}

# Our own knobs, in one namespaced dict (like DRF's REST_FRAMEWORK). Every limit is here.
AGENTSITE: dict[str, Any] = {  # mixed value types: typed Any so each use site states what it expects
    "DATA_DIR": str(DATA_DIR),
    # Hostile input: checked by the ASGI guard (agentsite/guard.py) before any view runs.
    "MAX_BODY_BYTES": MAX_BODY_BYTES,
    "MAX_MESSAGES": env_int("AGENTSITE_MAX_MESSAGES", 1000),
    "MAX_JSON_DEPTH": 64,
    # Overload (agentsite/shedding.py): past either, new /v1 work is refused with 503 + Retry-After.
    "MAX_INFLIGHT": env_int("AGENTSITE_MAX_INFLIGHT", 2000),
    "SHED_LAG_S": env_float("AGENTSITE_SHED_LAG_S", 2.0),
    # A session's run lock is a lease renewed every third of this while the run goes: a dead
    # worker's lock frees itself within this many seconds.
    "RUN_LEASE_S": env_float("AGENTSITE_RUN_LEASE_S", 45.0),
    # A streaming answer is saved (as an incomplete draft) at least this often.
    "RUN_CHECKPOINT_S": env_float("AGENTSITE_RUN_CHECKPOINT_S", 2.0),
    "MAX_IMAGE_BYTES": env_int("AGENTSITE_MAX_IMAGE_BYTES", 10 * 1024 * 1024),
    "MAX_AUDIO_BYTES": env_int("AGENTSITE_MAX_AUDIO_BYTES", 20 * 1024 * 1024),
    "MAX_TOOL_ROUNDS_LIMIT": env_int("AGENTSITE_MAX_TOOL_ROUNDS_LIMIT", 50),
    "TOOL_TIMEOUT_S": env_float("AGENTSITE_TOOL_TIMEOUT_S", 60.0),
    "SSE_PING_S": env_float("AGENTSITE_SSE_PING_S", 15.0),
    "BASH_ENABLED": env_bool("AGENTSITE_BASH_ENABLED", False),
    # bash runs in bubblewrap or not at all; only this explicit opt-out runs it on the host
    # (AGENTSITE_BASH_SANDBOX is no longer read: a system check says so if it is still set).
    "BASH_UNSANDBOXED": env_bool("AGENTSITE_BASH_UNSANDBOXED", False),
    "BASH_NETWORK": env_bool("AGENTSITE_BASH_NETWORK", False),
    "BASH_TIMEOUT_S": env_float("AGENTSITE_BASH_TIMEOUT_S", 30.0),
    "BASH_OUTPUT_CAP": env_int("AGENTSITE_BASH_OUTPUT_CAP", 16 * 1024),
    # Per-process limits of a command (0: none): CPU seconds, address space, processes, file size.
    "BASH_CPU_S": env_int("AGENTSITE_BASH_CPU_S", 60),
    "BASH_MEMORY_MB": env_int("AGENTSITE_BASH_MEMORY_MB", 2048),
    "BASH_MAX_PROCS": env_int("AGENTSITE_BASH_MAX_PROCS", 128),
    "BASH_FILE_MB": env_int("AGENTSITE_BASH_FILE_MB", 256),
    "FETCH_ALLOW_HOSTS": env_list("AGENTSITE_FETCH_ALLOW_HOSTS", []),
    "FETCH_MAX_BYTES": env_int("AGENTSITE_FETCH_MAX_BYTES", 2 * 1024 * 1024),
    "FETCH_TIMEOUT_S": env_float("AGENTSITE_FETCH_TIMEOUT_S", 20.0),
    "SKILL_MAX_FILES": env_int("AGENTSITE_SKILL_MAX_FILES", 500),
    "SKILL_MAX_BYTES": env_int("AGENTSITE_SKILL_MAX_BYTES", 20 * 1024 * 1024),
    "MCP_CALL_TIMEOUT_S": env_float("AGENTSITE_MCP_CALL_TIMEOUT_S", 60.0),
    # One MCP message at most (a tool result over it is a tool error, docs/mcp.md), and how much
    # of a tool's result goes to the model (the direct call answers it whole).
    "MCP_MAX_MESSAGE_MB": env_float("AGENTSITE_MCP_MAX_MESSAGE_MB", 100.0),
    "TOOL_RESULT_MAX_CHARS": env_int("AGENTSITE_TOOL_RESULT_MAX_CHARS", 100_000),
    # Agents that use agents: how deep sub-runs may nest, and how long one may take.
    "AGENT_MAX_DEPTH": env_int("AGENTSITE_AGENT_MAX_DEPTH", 3),
    "AGENT_TIMEOUT_S": env_float("AGENTSITE_AGENT_TIMEOUT_S", 600.0),
    # Login throttling (accounts/lockout.py, docs/security.md): client addresses come from
    # X-Forwarded-For only through these proxies (core/proxies.py).
    "TRUSTED_PROXIES": TRUSTED_PROXIES,
    "LOGIN_MAX_FAILURES": env_int("AGENTSITE_LOGIN_MAX_FAILURES", 5),
    "LOGIN_ADDRESS_MAX_FAILURES": env_int("AGENTSITE_LOGIN_ADDRESS_MAX_FAILURES", 20),
    "LOGIN_LOCKOUT_BASE_S": env_int("AGENTSITE_LOGIN_LOCKOUT_BASE_S", 60),
    "LOGIN_LOCKOUT_S": env_int("AGENTSITE_LOGIN_LOCKOUT_S", 900),
    "LOGIN_ATTEMPTS_DAYS": env_int("AGENTSITE_LOGIN_ATTEMPTS_DAYS", 30),
    # After each completed session turn, one extra model call extracts durable user facts.
    "MEMORY_EXTRACTION": env_bool("AGENTSITE_MEMORY_EXTRACTION", True),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every record is scrubbed of known secrets before it is written (core/secrets.py).
    "filters": {"secrets": {"()": "core.secrets.SecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["secrets"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx logs every request at INFO: too chatty for a server relaying thousands of streams.
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        # httpx2 (the mcp SDK's client) logs full URLs, which may carry tokens.
        "httpx2": {"level": "WARNING"},
        "mcp": {"level": "WARNING"},
    },
}
