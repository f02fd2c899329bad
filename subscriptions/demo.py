"""The seed's four plans, on the 全館 VIP tiers of the demo programme."""

from membership.models import Tier

from .models import Plan

PLANS = [
    ("免費會員", 0, None, "基本功能", True),
    ("基礎方案", 199, "銀卡", "免運費", False),
    ("進階方案", 499, "金卡", "免運費＋5% 回饋", False),
    ("尊榮方案", 999, "鑽石", "全站 85 折", False),
]


def create_demo_plans() -> list[Plan]:
    plans = []
    for position, (name, price, tier_name, perks, free) in enumerate(PLANS):
        tier = (
            Tier.objects.filter(group__is_default=True, name=tier_name).first()
            if tier_name
            else None
        )
        plan, _ = Plan.objects.get_or_create(
            name=name,
            defaults={
                "price": price,
                "tier": tier,
                "perks": perks,
                "is_free": free,
                "position": position,
            },
        )
        plans.append(plan)
    return plans
