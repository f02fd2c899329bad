import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from membership.models import Member, Tier
from points import partners, rewards, services
from points.models import (
    Action,
    BirthdayRule,
    Partner,
    PartnerBonus,
    Promotion,
    Referral,
    Reward,
    TierCoefficient,
)


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
        self._examples()
        self.stdout.write("Rewards, actions, the birthday rule and partner brands: ready.")

    def _examples(self):
        """Something in every points list, and points on the demo member's panel.

        Everything goes through the points services with fixed keys, so running the
        command again adds nothing.
        """
        if diamond := Tier.objects.filter(name="鑽石").first():
            TierCoefficient.objects.get_or_create(
                tier=diamond, defaults={"coefficient": Decimal("1.5")}
            )
        today = timezone.localdate()
        year = today.year if today >= dt.date(today.year, 11, 12) else today.year - 1
        local = timezone.get_current_timezone()
        Promotion.objects.get_or_create(
            name=f"{year} 雙 11 點數 3 倍",
            defaults={
                "starts_at": dt.datetime(year, 11, 11, tzinfo=local),
                "ends_at": dt.datetime(year, 11, 12, tzinfo=local),
                "multiplier": Decimal(3),
            },
        )
        member = Member.objects.filter(external_id="DEMO-MEMBER").first()
        operator = get_user_model().objects.filter(username="admin").first()
        if member is None or operator is None:
            return
        # A member who came over from the shop's old system brings their balance along.
        services.adjust(
            member_id=member.pk,
            points=2_400,
            reason="舊會員系統點數轉入",
            actor=operator,
            key=f"demo:opening:{member.external_id}",
        )
        for action in Action.objects.filter(code__in=["checkin", "review"]):
            rewards.award_action(
                member_id=member.pk, action=action, key=f"demo:{action.code}:{member.pk}"
            )
        partners.send_to_partner(
            member_id=member.pk,
            partner=Partner.objects.get(code="brand-a"),
            points=300,
            key=f"demo:brand-a:{member.pk}",
        )
        friend = Member.objects.filter(external_id="M000003").first()
        if friend and not Referral.objects.filter(friend=friend).exists():
            rewards.refer(referrer=member, friend=friend)
