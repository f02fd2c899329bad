from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from membership.models import Tier
from points.models import Action, Reward


class Command(BaseCommand):
    help = "Demo rewards (tier months: 1,000 pts = 銀卡, 3,000 = 金卡) and actions."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo_points only runs with DJANGO_DEBUG=1.")
        tiers = {t.name: t for t in Tier.objects.filter(group__is_default=True)}
        for name, cost, tier, stock in [
            ("銀卡一個月", 1_000, tiers.get("銀卡"), None),
            ("金卡一個月", 3_000, tiers.get("金卡"), None),
            ("品牌帆布袋", 600, None, 200),
        ]:
            Reward.objects.get_or_create(
                name=name, defaults={"points_cost": cost, "tier": tier, "stock": stock}
            )
        for code, name, points in [
            ("checkin", "每日簽到", 10),
            ("review", "商品評論", 50),
            ("share", "分享商品", 20),
        ]:
            Action.objects.get_or_create(code=code, defaults={"name": name, "points": points})
        self.stdout.write("Rewards and actions: ready.")
