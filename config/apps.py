from axes.apps import AppConfig as _AxesConfig
from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.utils.translation import gettext_lazy as _


class AdminConfig(DjangoAdminConfig):
    """Django's admin with our site, which asks staff for a TOTP token when required."""

    default_site = "config.security.StaffAdminSite"


class AxesConfig(_AxesConfig):
    """django-axes under a name a merchant reads (its own is the package's, "Axes")."""

    verbose_name = _("Login protection")


# django-otp's models and fields carry English names that are not marked for translation,
# and its apps none at all: the admin's sidebar showed "OTP_TOTP › TOTP devices" on every
# page. Named here, in the site's languages, for its two device apps.
OTP_FIELD_NAMES = {
    "user": _("user"),
    "name": _("device name"),
    "confirmed": _("confirmed"),
    "created_at": _("created at"),
    "last_used_at": _("last used at"),
    "throttling_failure_timestamp": _("last failed attempt"),
    "throttling_failure_count": _("failed attempts in a row"),
    "key": _("secret key"),
    "step": _("time step (seconds)"),
    "t0": _("start time"),
    "digits": _("digits"),
    "tolerance": _("tolerance (steps)"),
    "drift": _("clock drift (steps)"),
    "last_t": _("last time step used"),
}


# Their help texts too (shown under each field of a device's page).
OTP_HELP_TEXTS = {
    "user": _("The staff member this device belongs to."),
    "name": _("A name that tells this device apart, e.g. 小美的手機."),
    "confirmed": _("Whether the device is ready to be used at login."),
    "created_at": _("When the device was added."),
    "last_used_at": _("When a code from this device was last accepted."),
    "throttling_failure_timestamp": _(
        "When a wrong code was last entered; empty if the last code was right."
    ),
    "throttling_failure_count": _("Wrong codes entered in a row."),
    "key": _("The secret the authenticator app shares (hexadecimal, up to 40 bytes)."),
    "step": _("How many seconds each code lasts."),
    "t0": _("The Unix time from which the time steps are counted."),
    "digits": _("How many digits a code has."),
    "tolerance": _("How many time steps before or after now a code may come from."),
    "drift": _("How many time steps the device's clock is known to be off."),
    "last_t": _("The time step of the last code accepted; the next must be later."),
}


def _with_help_text(formfield, help_text):
    """The field's form field with our help text; the model field itself (and so its
    migrations, which django-otp ships) keeps the package's."""

    def build(*args, **kwargs):
        field = formfield(*args, **kwargs)
        if field is not None:
            field.help_text = help_text
        return field

    return build


class _OtpDevicesConfig(AppConfig):
    default_auto_field = "django.db.models.AutoField"
    model_names: tuple = ()

    def ready(self):
        for model, (singular, plural) in zip(self.get_models(), self.model_names, strict=True):
            model._meta.verbose_name = singular
            model._meta.verbose_name_plural = plural
            for field in model._meta.fields:
                if field.name in OTP_FIELD_NAMES:
                    # verbose_name, not the constructor's _verbose_name: migrations and
                    # django-otp's own state stay as the package ships them.
                    field.verbose_name = OTP_FIELD_NAMES[field.name]
                if field.name in OTP_HELP_TEXTS:
                    field.formfield = _with_help_text(field.formfield, OTP_HELP_TEXTS[field.name])


class OtpTotpConfig(_OtpDevicesConfig):
    name = "django_otp.plugins.otp_totp"
    label = "otp_totp"
    verbose_name = _("Authenticator app (TOTP)")
    model_names = ((_("TOTP device"), _("TOTP devices")),)


class OtpStaticConfig(_OtpDevicesConfig):
    name = "django_otp.plugins.otp_static"
    label = "otp_static"
    verbose_name = _("Backup codes")
    model_names = (
        (_("backup code device"), _("backup code devices")),
        (_("backup code"), _("backup codes")),
    )
