"""Settings, read from the environment with django-environ.

Local defaults run the whole site alone: SQLite, eager Celery, console e-mail.
Production sets DJANGO_DEBUG=0 and supplies the secrets; nothing secret lives here.
"""

import datetime as dt
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The fallback key only ever exists for local development; production must set one.
SECRET_KEY = env(
    "DJANGO_SECRET_KEY", default="insecure-local-development-key" if DEBUG else environ.Env.NOTSET
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin site, with TOTP for staff when STAFF_TOTP_REQUIRED is on (config/security.py).
    "config.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Trigram indexes for the admin's member search (membership/migration_ops.py); its
    # ready() teaches index expressions the operator class. Harmless on SQLite.
    "django.contrib.postgres",
    "adminsortable2",
    "django_celery_beat",
    "import_export",
    "membership",
    "b2b",
    "subscriptions",
    "points",
    "imports",
    "segments",
    "api",
    "jobs",
]
# -- Security: login throttling, TOTP for staff, Content-Security-Policy (README "Security") --
INSTALLED_APPS += [
    "config.apps.AxesConfig",
    "csp",
    "django_otp",
    "config.apps.OtpTotpConfig",
    "config.apps.OtpStaticConfig",
]
# Points from an order wait out the return window before they can be spent.
POINTS_PENDING_DAYS = env.int("POINTS_PENDING_DAYS", default=7)
# Each earning (a lot) expires this many months after it becomes spendable.
POINTS_LOT_MONTHS = env.int("POINTS_LOT_MONTHS", default=12)
# Points a member can earn from non-purchase actions (check-in, review, share) in one day.
POINTS_DAILY_ACTION_CAP = env.int("POINTS_DAILY_ACTION_CAP", default=200)
# The payment gateway behind the port in subscriptions/gateways; the sandbox calls no network.
PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="subscriptions.gateways.sandbox.SandboxGateway")
# Charge attempts in the grace period, in days after the due date; the last ends the grace.
SUBSCRIPTION_RETRY_DAYS = [1, 3, 5, 7]
SUBSCRIPTION_REMINDER_DAYS = 7
# What one point is worth in NT$, for the points liability on the KPI dashboard: the seed's
# 1,000 points buy a month of 銀卡, which 基礎方案 sells for NT$199.
POINTS_NTD_PER_POINT = env.str("POINTS_NTD_PER_POINT", default="0.199")
# The tag that puts a member in the enterprise VIP group; every enterprise master carries it.
B2B_ENTERPRISE_TAG = env("B2B_ENTERPRISE_TAG", default="企業客戶")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Security: the verified second factor on request.user, the CSP header, and axes last
    # (it turns a locked-out login into the lockout page).
    "django_otp.middleware.OTPMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # Production serves its own static files (no CDN); runserver does it in development.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
    {
        # The member's tier page only (config/jinja.py says why); asked for by name
        # (``using="jinja2"``), so every other template stays Django's.
        "NAME": "jinja2",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "config.jinja.environment"},
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Parameters bound by the server, so a statement a connection runs again and again (the
    # member page's, the ledger's) is planned once (psycopg prepares it after a few runs).
    # Behind a transaction-pooling proxy without prepared-statement support, set
    # DB_PREPARE_THRESHOLD= (empty) to turn preparing off.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=env.bool("DB_SERVER_SIDE_BINDING", default=True),
        prepare_threshold=int(env.str("DB_PREPARE_THRESHOLD", default="5") or 0) or None,
    )
    # JIT off for the whole connection (sent at connect, no round trip): its compile time
    # (~100 ms) dwarfs every statement here, and an estimate past jit_above_cost (a holder
    # with many sub-accounts under stale statistics) turned it on for one order's summary.
    # DB_JIT=on leaves it to the server; a pooler that refuses startup options needs it.
    if env.str("DB_JIT", default="off") == "off":
        DATABASES["default"]["OPTIONS"]["options"] = "-c jit=off"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Waiting for the write lock beats failing at once when the worker and the site overlap.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)

# -- Read replicas (config/replica.py, README "Read replicas") --------------------------
# With DATABASE_REPLICA_URL, the member's pages, the CSV exports and the KPI dashboard read
# from that replica; writes, transactions and a visitor's reads for READ_YOUR_WRITES_SECONDS
# after their own change stay on the primary. Without it the alias mirrors default and
# nothing is routed to it; tests mirror default too (TEST MIRROR), one database seen twice.
READ_REPLICA = bool(env.str("DATABASE_REPLICA_URL", default=""))
DATABASES["replica"] = {
    **(env.db("DATABASE_REPLICA_URL") if READ_REPLICA else DATABASES["default"]),
    "TEST": {"MIRROR": "default"},
}
DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASES["default"]["CONN_MAX_AGE"])
DATABASES["replica"].setdefault("OPTIONS", dict(DATABASES["default"].get("OPTIONS", {})))
DATABASE_ROUTERS = ["config.replica.PrimaryReplicaRouter"]
READ_YOUR_WRITES_SECONDS = env.int("READ_YOUR_WRITES_SECONDS", default=5)
# Before axes, which stays last (it turns a locked-out login into the lockout page).
MIDDLEWARE.insert(
    MIDDLEWARE.index("axes.middleware.AxesMiddleware"), "config.replica.ReadYourWritesMiddleware"
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "zh-hant"
LANGUAGES = [("zh-hant", _("Traditional Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Taipei"
USE_I18N = True
USE_TZ = True

MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "var" / "media")
# Uploaded import files are read from disk, whatever their size, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Sessions live in the database, which every worker reads, so a logout ends the session
# everywhere at once (config/sessions.py: Django's, read with a hand-written statement).
# Only a cache all workers share (CACHE_URL, e.g. Redis) may sit in front of it: a
# per-process cache would keep serving a logged-out session.
SESSION_ENGINE = "config.sessions"
if "CACHE_URL" in env.ENVIRON:
    CACHES = {"default": env.cache("CACHE_URL")}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "members:my_tier"
LOGOUT_REDIRECT_URL = "login"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="vip@example.com")
if "EMAIL_URL" in env.ENVIRON:
    vars().update(env.email_url("EMAIL_URL"))

# Celery: eager when no broker is configured, so the site runs alone.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # `make run`'s embedded broker: kombu's filesystem transport, a folder of messages that
    # the site, the worker and beat share, so the demo runs its jobs with nothing installed.
    _broker_dir = Path(
        env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(BASE_DIR / "var" / "broker"))
    )
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    # Installed into django-celery-beat's tables on beat start-up; operators edit them there.
    # Batch jobs (jobs app): each starts a job record whose chunks the workers share;
    # a job left unfinished (a worker killed) is resumed by the next start of its kind.
    "review-tiers-daily": {
        "task": "jobs.tasks.start_job",
        "args": ["review"],
        "schedule": 60 * 60 * 24,
    },
    "recompute-tiers-nightly": {
        "task": "jobs.tasks.start_job",
        "args": ["recompute"],
        "schedule": crontab(minute=0, hour=1),
    },
    "renew-subscriptions": {
        "task": "subscriptions.tasks.run_subscription_jobs",
        "schedule": 60 * 15,
    },
    "expire-points-daily": {
        "task": "points.tasks.expire_due_points",
        "schedule": 60 * 60 * 24,
    },
    "remind-expiring-points-daily": {
        "task": "points.tasks.send_points_expiry_reminders",
        "schedule": 60 * 60 * 24,
    },
    "send-tier-notifications": {
        "task": "membership.tasks.send_tier_notifications",
        "schedule": 60,
    },
    "award-birthday-points-monthly": {
        "task": "points.tasks.award_birthday_points",
        "schedule": crontab(minute=0, hour=3, day_of_month=1),
    },
    "nudges-daily": {
        "task": "jobs.tasks.start_job",
        "args": ["nudges"],
        "schedule": crontab(minute=0, hour=10),
    },
    # 等級保留提醒: members below retention, the group's warning days before their review.
    "review-warnings-daily": {
        "task": "membership.tasks.compute_review_warnings",
        "schedule": crontab(minute=30, hour=9),
    },
    "segments-nightly": {
        "task": "jobs.tasks.start_job",
        "args": ["segments"],
        "schedule": crontab(minute=30, hour=2),
    },
    "purge-old-imports-daily": {
        "task": "imports.tasks.purge_old_imports",
        "schedule": 60 * 60 * 24,
    },
    # Import jobs whose worker stopped (lease ran out) or whose broker was away.
    "sweep-import-jobs": {
        "task": "imports.tasks.sweep_import_jobs",
        "schedule": 60,
    },
}

# Programme versions: scheduled versions go live, seasonal ones end, at their moment.
CELERY_BEAT_SCHEDULE["switch-programme-versions"] = {
    "task": "membership.tasks.switch_programme_versions",
    "schedule": 60,
}

# Auto-adjust proposals from the month's measures, on the 1st at 04:00.
CELERY_BEAT_SCHEDULE["auto-adjust-monthly"] = {
    "task": "membership.tasks.run_auto_adjust",
    "schedule": crontab(minute=0, hour=4, day_of_month=1),
}

# Member summaries move with the windows at local midnight: rewritten just after it.
CELERY_BEAT_SCHEDULE["refresh-member-summaries"] = {
    "task": "membership.tasks.refresh_member_summaries",
    "schedule": crontab(minute=1, hour=0),
}

# The outbox (membership.outbox): follow-ups owed after a commit that the broker did not
# take, or that no worker finished, are sent again every minute.
CELERY_BEAT_SCHEDULE["sweep-outbox"] = {
    "task": "membership.tasks.sweep_outbox",
    "schedule": 60,
}
# Imports: the largest upload accepted, how long a worker's claim on a job lasts without
# renewal, and how many attempts a job gets before it is marked failed.
IMPORT_MAX_UPLOAD_MB = env.int("IMPORT_MAX_UPLOAD_MB", default=100)
IMPORT_LEASE_SECONDS = env.int("IMPORT_LEASE_SECONDS", default=120)
IMPORT_MAX_ATTEMPTS = env.int("IMPORT_MAX_ATTEMPTS", default=3)

# The order sources and channels the shop sends, offered as the orders list's filters: a
# fixed list, because reading them off ten million orders (SELECT DISTINCT) costs a second
# a page. A value not listed still filters when put in the address (?channel=…).
ORDER_SOURCES = env.list("ORDER_SOURCES", default=["shop"])
ORDER_CHANNELS = env.list("ORDER_CHANNELS", default=["web", "app", "store", "line"])

# How many members one recompute statement covers; bounds memory and lock time.
MEMBERSHIP_RECOMPUTE_CHUNK = env.int("MEMBERSHIP_RECOMPUTE_CHUNK", default=100_000)
# A recompute chunk that moves more members than this drops their summaries (the tier
# page then reads afresh) and owes their rebuild to the summaries job, rather than
# rewriting them in its own transaction (membership.services.bulk._summaries_of).
MEMBERSHIP_SUMMARY_INLINE = env.int("MEMBERSHIP_SUMMARY_INLINE", default=2_000)
# Database connections an impact preview reads its chunks of members on at once
# (membership.services.preview): it writes nothing, so its chunks need no one snapshot.
PREVIEW_WORKERS = env.int("PREVIEW_WORKERS", default=2)
# Members per chunk of a batch job (jobs app): small enough that the workers share a
# job evenly, large enough that each chunk's statements are planned once for many rows.
JOBS_CHUNK = env.int("JOBS_CHUNK", default=25_000)
# The queue the chunks go to: the default one, or one that dedicated workers listen to
# (`celery -A config worker -Q jobs`) so a long night never delays the e-mails.
JOBS_QUEUE = env("JOBS_QUEUE", default="celery")

# Payment faults (subscriptions.services): a lost gateway answer is asked again with the
# same key after these waits (seconds) before anything is decided; the sweeper asks again
# every 5 minutes, and an attempt still unanswered after SUBSCRIPTION_ANSWER_HOURS counts
# as not paid.
SUBSCRIPTION_ASK_AGAIN_AFTER = env.list(
    "SUBSCRIPTION_ASK_AGAIN_AFTER", cast=float, default=[1.0, 3.0]
)
SUBSCRIPTION_ANSWER_HOURS = env.int("SUBSCRIPTION_ANSWER_HOURS", default=24)
CELERY_BEAT_SCHEDULE["settle-pending-charges"] = {
    "task": "subscriptions.tasks.settle_pending_charges",
    "schedule": 60 * 5,
}
# django-import-export: every list's Export (CSV with BOM, XLSX, JSON) needs the model's
# "export" permission (created for each exporting admin by membership.admin.exports);
# configuration imports are audited in our own log instead of Django's LogEntry.
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_IMPORT_IGNORE_BLANK_LINES = True
IMPORT_EXPORT_CHUNK_SIZE = 2000

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# -- Security -------------------------------------------------------------------------
# Login throttling (django-axes) on /login/ and /admin/login/: after AXES_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair is locked for the
# cool-off. The pair, not the address alone, so members behind a carrier's shared address
# are not locked out by a stranger, and a stranger cannot lock a member out everywhere.
# Operators with "delete access attempt" unlock early in the admin (Axes › Access attempts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Ends the search at a wrong password: a password backend added later goes before it.
    "config.auth.AccountBackend",
    # Only for sessions made before AccountBackend (config/auth.py says why).
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
# Behind N reverse proxies the client is the Nth address from the right of X-Forwarded-For;
# 0 (the default) reads the socket's address, which a client cannot forge.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"

# TOTP for staff (django-otp): with STAFF_TOTP_REQUIRED on, the admin asks for a token from
# a confirmed device after the password, and a staff login without one does not reach it.
# On by default in production, off in development. Devices are managed in the admin
# (OTP_TOTP › TOTP devices, with a QR code); the first one via `manage.py addstatictoken USER`.
STAFF_TOTP_REQUIRED = env.bool("STAFF_TOTP_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = "VIP 會員管理"

# Content-Security-Policy (django-csp): scripts and style sheets only from this site, no
# inline script. Style attributes stay allowed (style-src-attr) for colours from data: the
# tier badges and progress bars.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# -- The shop's API (/api/v1/, README "API"): keys, scopes, idempotency, problem details --
INSTALLED_APPS += ["rest_framework", "django_filters", "drf_spectacular", "drf_spectacular_sidecar"]
# Requests per API key; beyond it 429 with Retry-After. Counted per process unless CACHE_URL
# names a cache the workers share.
API_RATE_LIMIT = env("API_RATE_LIMIT", default="1200/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.authentication.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.authentication.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "VIP membership API",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_problem_responses",
    ],
    # Swagger UI from this site's static files (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
CELERY_BEAT_SCHEDULE["purge-idempotency-keys-daily"] = {
    "task": "api.tasks.purge_idempotency_keys",
    "schedule": 60 * 60 * 24,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# -- Webhooks out (api.webhooks, README "Webhooks") --
# Off in production: https only, never to localhost or a private/reserved address (SSRF).
# On by default with DEBUG so a receiver on this machine can be tried.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=DEBUG)
# Deliveries are sent after the change's commit; this sends the retries (and anything the
# broker missed) every minute.
CELERY_BEAT_SCHEDULE["send-webhooks"] = {
    "task": "api.tasks.send_webhooks",
    "schedule": 60,
}
