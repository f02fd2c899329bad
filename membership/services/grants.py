"""Tier grants: a tier held for a period (subscriptions, points redemptions)."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from membership.models import Cause, Tier, TierGrant

from .evaluation import EvaluationResult, evaluate_member


def grant_tier(
    *,
    member_id: int,
    tier: Tier,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    source: str,
    source_ref: str,
) -> tuple[TierGrant, EvaluationResult | None]:
    """Grant ``tier`` for a period. Idempotent on (source, source_ref).

    The member's effective tier becomes at least the granted tier while the grant
    is active and they are in its group; when it ends the earned tier applies again
    at the next evaluation.
    """
    if ends_at <= starts_at:
        raise ValidationError(_("A grant must end after it starts."))
    with transaction.atomic():
        grant, created = TierGrant.objects.get_or_create(
            source=source,
            source_ref=source_ref,
            defaults={
                "member_id": member_id,
                "tier": tier,
                "starts_at": starts_at,
                "ends_at": ends_at,
            },
        )
        if not created:
            if (grant.member_id, grant.tier_id) != (member_id, tier.pk):
                raise ValidationError(_("This grant reference is already used for another grant."))
            return grant, None
        return grant, evaluate_member(member_id=member_id, cause=Cause.GRANT)


def end_tier_grants(*, member_id: int, source_prefix: str, ref_prefix: str, at) -> None:
    """End, at ``at``, the member's grants still running whose source and reference start
    with these prefixes (a cancelled subscription's), then evaluate the member."""
    TierGrant.objects.filter(
        member_id=member_id,
        source__startswith=source_prefix,
        source_ref__startswith=ref_prefix,
        ends_at__gt=at,
    ).update(ends_at=at)
    evaluate_member(member_id=member_id, cause=Cause.GRANT)
