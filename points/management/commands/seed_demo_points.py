from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from membership.models import Tier
from points.models import Action, BirthdayRule, Partner, PartnerBonus, Reward


class Command(BaseCommand):
    help = (
        "Demo rewards (tier months: 1,000 pts = 銀卡, 3,000 = 金卡), actions, the birthday rule "
        "(30×, at most 3,000 points) and partner brands A (1:1 +10%), B (1:0.8 +20%, 5,000 a "
        "month), C (1:1.2, 金卡 and up)."
    )

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
        if not BirthdayRule.objects.exists():
            BirthdayRule.objects.create(multiplier=30, cap=3_000)
        vip = [t for t in tiers.values() if t.rank > 1]
        for code, name, rate, bonus, cap, floor in [
            ("brand-a", "A 品牌", "1", 10, None, None),
            ("brand-b", "B 品牌", "0.8", 20, 5_000, None),
            ("brand-c", "C 品牌", "1.2", 0, None, tiers.get("金卡")),
        ]:
            partner, created = Partner.objects.get_or_create(
                code=code,
                defaults={"name": name, "rate": rate, "monthly_cap": cap, "min_tier": floor},
            )
            if created and bonus:
                PartnerBonus.objects.bulk_create(
                    PartnerBonus(partner=partner, tier=tier, percent=bonus) for tier in vip
                )
        self.stdout.write("Rewards, actions, the birthday rule and partner brands: ready.")
