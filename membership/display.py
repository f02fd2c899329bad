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
VERSION_KEY = "membership:display:v1:version"
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


# This process's copy, used while the cache names the same version: the cache then hands
# back a short string instead of unpickling every tier and benefit on every page.
_local: Display | None = None


def display() -> Display:
    global _local
    version = cache.get(VERSION_KEY)
    if _local is not None and version == _local.version:
        return _local
    shown = cache.get(KEY)
    if shown is None or shown.version != version:
        shown = _load()
        cache.set_many({KEY: shown, VERSION_KEY: shown.version}, TIMEOUT)
    _local = shown
    return shown


def forget(**kwargs) -> None:
    cache.delete_many([KEY, VERSION_KEY])


def connect() -> None:
    for model in (VipGroup, Tier, TierBenefit):
        post_save.connect(forget, sender=model, dispatch_uid=f"display-save-{model.__name__}")
        post_delete.connect(forget, sender=model, dispatch_uid=f"display-del-{model.__name__}")
    m2m_changed.connect(forget, sender=VipGroup.entry_tags.through, dispatch_uid="display-tags")
