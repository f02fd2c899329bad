"""What the member's pages read about the programme, cached: it changes a few times a year
and every page needs it.

Only pages that show read this. Every write (evaluation, recompute, adjustments) reads
the configuration fresh with ``load_programme``. A configuration change here drops the
entry at once; other processes see it within ``TIMEOUT`` (or at once with a shared
cache such as Redis, ``CACHE_URL``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save

from .models import Tier, TierBenefit, VipGroup
from .services.rules import Programme, load_programme

KEY = "membership:display:v1"
TIMEOUT = 60


@dataclass
class Display:
    programme: Programme
    tiers: dict[int, list[Tier]]  # by group, by rank, benefits prefetched
    version: str  # changes with every load: keys the cached fragments made from it


def _load() -> Display:
    tiers: dict[int, list[Tier]] = {}
    for tier in Tier.objects.prefetch_related("benefits").order_by("group_id", "rank"):
        tiers.setdefault(tier.group_id, []).append(tier)
    return Display(programme=load_programme(), tiers=tiers, version=uuid.uuid4().hex)


def display() -> Display:
    return cache.get_or_set(KEY, _load, TIMEOUT)


def forget(**kwargs) -> None:
    cache.delete(KEY)


def connect() -> None:
    for model in (VipGroup, Tier, TierBenefit):
        post_save.connect(forget, sender=model, dispatch_uid=f"display-save-{model.__name__}")
        post_delete.connect(forget, sender=model, dispatch_uid=f"display-del-{model.__name__}")
    m2m_changed.connect(forget, sender=VipGroup.entry_tags.through, dispatch_uid="display-tags")
