"""Today's programme becomes version 1, live, so every later change is a draft of it."""

from django.db import migrations
from django.utils import timezone

GROUP_FIELDS = ["entry_amount", "entry_requires", "metric", "window", "review_period_months"]
TIER_FIELDS = ["upgrade_threshold", "retention_threshold"]


def version_one(apps, schema_editor):
    VipGroup = apps.get_model("membership", "VipGroup")
    Tier = apps.get_model("membership", "Tier")
    ProgrammeVersion = apps.get_model("membership", "ProgrammeVersion")
    VersionSwitch = apps.get_model("membership", "VersionSwitch")
    VersionGroupRule = apps.get_model("membership", "VersionGroupRule")
    VersionTierThreshold = apps.get_model("membership", "VersionTierThreshold")
    if ProgrammeVersion.objects.exists() or not VipGroup.objects.exists():
        return  # a new database: the first draft makes version 1 from what is configured
    now = timezone.now()
    version = ProgrammeVersion.objects.create(
        number=1, status="live", created_at=now, published_at=now, effective_from=now
    )
    VersionSwitch.objects.create(version=version, kind="start", done_at=now)
    VersionGroupRule.objects.bulk_create(
        VersionGroupRule(version=version, group_id=g["id"], **{f: g[f] for f in GROUP_FIELDS})
        for g in VipGroup.objects.values("id", *GROUP_FIELDS)
    )
    VersionTierThreshold.objects.bulk_create(
        VersionTierThreshold(version=version, tier_id=t["id"], **{f: t[f] for f in TIER_FIELDS})
        for t in Tier.objects.values("id", *TIER_FIELDS)
    )


class Migration(migrations.Migration):
    dependencies = [("membership", "0014_programme_versions")]

    operations = [migrations.RunPython(version_one, migrations.RunPython.noop)]
