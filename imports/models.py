"""An import job and its staging rows.

A file is checked into staging rows (the valid ones) and problems (the bad ones),
streaming, so memory does not grow with the file. Writing is then a handful of
set-based statements from staging into the real tables, in one transaction.
Staging rows are scratch: they are deleted when the job is written or discarded.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        MEMBERS = "members", _("Members")
        ORDERS = "orders", _("Orders")

    class Status(models.TextChoices):
        ENCODING = "encoding", _("Encoding to confirm")
        QUEUED = "queued", _("Queued")
        CHECKING = "checking", _("Checking")
        CHECKED = "checked", _("Checked")
        WRITING = "writing", _("Writing")
        DONE = "done", _("Imported")
        DISCARDED = "discarded", _("Discarded")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    filename = models.CharField(_("file name"), max_length=200)
    encoding = models.CharField(
        _("encoding"), max_length=12, blank=True, help_text=_("Blank: detect.")
    )
    allow_new_tags = models.BooleanField(_("create unknown tags"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.QUEUED)
    total_rows = bounded(models.PositiveIntegerField(_("rows"), default=0))
    rows_done = bounded(models.PositiveIntegerField(_("rows checked"), default=0))
    error_rows = bounded(models.PositiveIntegerField(_("rows with errors"), default=0))
    existing_rows = bounded(
        models.PositiveIntegerField(_("rows updating existing records"), default=0)
    )
    valid_only = models.BooleanField(_("valid rows only"), default=False)
    created = bounded(models.PositiveIntegerField(_("created"), default=0))
    updated = bounded(models.PositiveIntegerField(_("updated"), default=0))
    skipped = bounded(models.PositiveIntegerField(_("skipped"), default=0))
    message = models.TextField(_("message"), blank=True)
    notify = models.BooleanField(_("notify members and issue gifts"), default=False)
    emails_queued = bounded(models.PositiveIntegerField(_("e-mails queued"), default=0))
    gifts_issued = bounded(models.PositiveIntegerField(_("gifts issued"), default=0))
    # The job row is its own outbox: queued (or confirmed) work is dispatched after the
    # commit, and the sweeper dispatches it again if the broker was away.
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)
    # A check or write is claimed by one worker with a lease it renews while it works; a
    # lease that runs out is claimed again by the sweeper, up to a number of attempts.
    claimed_by = models.CharField(_("claimed by"), max_length=100, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    attempts = bounded(models.PositiveSmallIntegerField(_("attempts"), default=0))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    written_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("confirmed by"),
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        permissions = [
            ("import_members", _("Can import members")),
            ("import_orders", _("Can import orders")),
            ("export_members", _("Can export members")),
            ("export_orders", _("Can export orders")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.filename}"

    @property
    def valid_rows(self) -> int:
        return max(self.total_rows - self.error_rows, 0)

    @property
    def busy(self) -> bool:
        return self.status in {self.Status.QUEUED, self.Status.CHECKING, self.Status.WRITING}

    @property
    def can_discard(self) -> bool:
        return self.status not in {self.Status.DONE, self.Status.DISCARDED}

    @property
    def percent(self) -> int:
        return min(100, self.rows_done * 100 // self.total_rows) if self.total_rows else 0


class Problem(models.Model):
    """One reason one row of the file cannot be imported."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="problems")
    line = bounded(models.PositiveIntegerField(_("line")))
    column = models.CharField(_("column"), max_length=40)
    value = models.CharField(_("value"), max_length=200, blank=True)
    message = models.CharField(_("reason"), max_length=300)

    class Meta:
        ordering = ["line", "id"]
        verbose_name = _("problem")
        verbose_name_plural = _("problems")
        indexes = [models.Index(fields=["job", "line"], name="import_problem_job_line_idx")]

    def __str__(self) -> str:
        return f"{self.line}/{self.column}: {self.message}"


class StagedMember(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+")
    line = bounded(models.PositiveIntegerField())
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    phone = models.CharField(max_length=20, blank=True)
    email = models.CharField(max_length=254, blank=True)
    birthday = models.DateField(null=True)
    joined_at = models.DateTimeField(null=True)
    opening_spend = bounded(models.BigIntegerField(null=True))
    opening_tier = models.ForeignKey(
        "membership.Tier",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_constraint=False,
    )
    opening_points = bounded(models.BigIntegerField(null=True))

    class Meta:
        indexes = [models.Index(fields=["job", "external_id"], name="staged_member_job_ext_idx")]

    def __str__(self) -> str:
        return self.external_id


class StagedTag(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return f"{self.external_id}:{self.name}"


class StagedOrder(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+")
    line = bounded(models.PositiveIntegerField())
    external_id = models.CharField(max_length=64)
    member_external_id = models.CharField(max_length=64)
    amount = bounded(models.BigIntegerField())
    refunded_amount = bounded(models.BigIntegerField(default=0))
    placed_at = models.DateTimeField()
    channel = models.CharField(max_length=30, blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "external_id"], name="staged_order_job_ext_idx")]

    def __str__(self) -> str:
        return self.external_id
