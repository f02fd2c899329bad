"""Saved audiences (受眾): a member filter with a name, used to export, tag and target offers."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _

from membership.models import Member, Tag
from membership.services import change_tag_for_members, record_audit

from .filters import MemberFilter
from .models import Audience


def filter_members(query: QueryDict) -> tuple[MemberFilter, QuerySet[Member]]:
    """The bound FilterSet and the members it selects today (none while the form is invalid)."""
    filterset = MemberFilter(query, queryset=Member.objects.order_by("pk"))
    members = filterset.qs if filterset.is_valid() else Member.objects.none()
    return filterset, members


def clean_query(query: QueryDict) -> str:
    """Only the filters' own, non-empty parameters, in a stable order."""
    kept = QueryDict(mutable=True)
    for name in MemberFilter.base_filters:
        values = [v for v in query.getlist(name) if v not in ("", None)]
        if values:
            kept.setlist(name, values)
    return kept.urlencode()


def members_of(audience: Audience) -> QuerySet[Member]:
    return filter_members(QueryDict(audience.query))[1]


def save_audience(
    *, name: str, description: str = "", query: QueryDict, actor, audience: Audience | None = None
) -> Audience:
    """Create or change an audience; refused while its filters are invalid. Audited."""
    filterset, _members = filter_members(query)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    if not name.strip():
        raise ValidationError({"name": _("An audience needs a name.")})
    with transaction.atomic():
        audience = audience or Audience()
        saved = Audience.objects.filter(pk=audience.pk).values("name", "query").first()
        before = {"name": saved["name"], "filters": saved["query"]} if saved else None
        if audience.pk is None:
            audience.created_by = actor if getattr(actor, "pk", None) else None
        audience.name, audience.description = name.strip(), description
        audience.query = clean_query(query)
        audience.full_clean()
        audience.save()
        record_audit(
            actor=actor,
            action="audience.save",
            obj=audience,
            before=before,
            after={"name": audience.name, "filters": audience.query},
        )
    return audience


def tag_audience(*, audience: Audience, tag: Tag, add: bool, actor, reason: str = ""):
    """Add or remove one tag on every member of the audience, set-based and audited."""
    ids = list(members_of(audience).values_list("pk", flat=True))
    return change_tag_for_members(
        member_ids=ids,
        tag=tag,
        add=add,
        actor=actor,
        reason=reason or _("Audience %(name)s") % {"name": audience.name},
    )
