"""A batch job over all members and its chunks.

A job (the recompute, the review, the nudges, the segments) is a list of steps; a
chunked step is split into member id ranges, one ``JobChunk`` row each, written when
the job starts. A chunk's work and its done flag commit in one transaction, and the
row is locked while it runs, so a chunk delivered twice, or run by two workers at
once, is done once. Steps run in order: the last chunk of a step starts the next.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded


class Job(models.Model):
    class Kind(models.TextChoices):
        RECOMPUTE = "recompute", _("Recompute tiers")
        REVIEW = "review", _("Tier review")
        NUDGES = "nudges", _("Nudges")
        SEGMENTS = "segments", _("Segments and KPI snapshots")
        SUMMARIES = "summaries", _("Member summaries")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind)
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.RUNNING)
    # What every chunk needs to give the same answer wherever and whenever it runs (the
    # moment the job stands for, values a step computed for the next), as JSON.
    params = models.JSONField(_("parameters"), default=dict)
    step = bounded(models.PositiveSmallIntegerField(_("step"), default=0))
    chunks_total = bounded(models.PositiveIntegerField(_("chunks"), default=0))
    chunks_done = bounded(models.PositiveIntegerField(_("chunks done"), default=0))
    result = models.JSONField(_("result"), default=dict)
    error = models.TextField(_("error"), blank=True)
    dispatched = models.BooleanField(_("through the workers"), default=False)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("batch job")
        verbose_name_plural = _("batch jobs")
        ordering = ["-started_at", "-id"]
        constraints = [
            # Starting a job while one of its kind is unfinished resumes that one.
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(finished_at__isnull=True),
                name="one_unfinished_job_per_kind",
                violation_error_message=_("A job of this kind is already running."),
            ),
            models.CheckConstraint(
                condition=Q(chunks_done__lte=models.F("chunks_total")),
                name="job_chunks_done_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class JobChunk(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    step = bounded(models.PositiveSmallIntegerField(_("step")))
    id_from = bounded(models.BigIntegerField(_("from member id")))
    id_to = bounded(models.BigIntegerField(_("to member id")))
    attempts = bounded(models.PositiveSmallIntegerField(_("attempts"), default=0))
    result = models.JSONField(_("result"), default=dict)
    error = models.TextField(_("error"), blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        verbose_name = _("chunk")
        verbose_name_plural = _("chunks")
        ordering = ["job", "step", "id_from"]
        constraints = [
            models.UniqueConstraint(fields=["job", "step", "id_from"], name="one_chunk_per_range"),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.step}: {self.id_from}–{self.id_to}"
