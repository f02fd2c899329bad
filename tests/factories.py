"""factory_boy factories and the DESIGN.md programme used across the tests."""

import datetime as dt
from types import SimpleNamespace

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from membership.models import Member, Metric, Order, Tag, Tier, VipGroup, Window


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


def staff_with(*codenames):
    """A staff user holding exactly these permissions."""
    from django.contrib.auth.models import Permission

    user = UserFactory()
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"tag{n}")


class VipGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VipGroup

    name = factory.Sequence(lambda n: f"group{n}")
    priority = factory.Sequence(int)
    metric = Metric.SPEND
    window = Window.ROLLING_12_MONTHS


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    group = factory.SubFactory(VipGroupFactory)
    rank = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"tier{n}")
    upgrade_threshold = 0
    retention_threshold = factory.LazyAttribute(lambda t: t.upgrade_threshold)


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    name = factory.Sequence(lambda n: f"會員{n}")
    email = factory.Sequence(lambda n: f"member{n}@example.com")
    joined_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=400))


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row written directly, for history that predates the test."""

    class Meta:
        model = Order

    member = factory.SubFactory(MemberFactory)
    source = "shop"
    external_id = factory.Sequence(lambda n: f"A{n:06d}")
    amount = 1000
    placed_at = factory.LazyFunction(timezone.now)


def _tiers(group, rows):
    return {
        name: TierFactory(
            group=group,
            rank=i + 1,
            name=name,
            upgrade_threshold=up,
            retention_threshold=keep,
            upgrade_gift=gift,
        )
        for i, (name, up, keep, gift) in enumerate(rows)
    }


def build_design_programme() -> SimpleNamespace:
    """全館 VIP (default), 企業 VIP, 員工福利 and KOL 合作, KOL checked first.

    全館: 銀卡 at NT$10,000 and 金卡 at NT$30,000 (seed 000's thresholds), rolling
    12 months; 企業 VIP: 銅牌 at NT$10,000, 銀牌 at NT$200,000 (the worked example),
    金牌 at NT$500,000, calendar year.
    """
    enterprise_tag = TagFactory(name="企業客戶")
    staff_tag = TagFactory(name="員工")
    kol_tag = TagFactory(name="KOL")
    kol = VipGroupFactory(name="KOL 合作", priority=1)
    kol.entry_tags.add(kol_tag)
    staff = VipGroupFactory(name="員工福利", priority=2, metric=Metric.ORDER_COUNT)
    staff.entry_tags.add(staff_tag)
    enterprise = VipGroupFactory(name="企業 VIP", priority=3, window=Window.CALENDAR_YEAR)
    enterprise.entry_tags.add(enterprise_tag)
    general = VipGroupFactory(name="全館 VIP", priority=4, is_default=True)
    return SimpleNamespace(
        general=general,
        enterprise=enterprise,
        staff=staff,
        kol=kol,
        enterprise_tag=enterprise_tag,
        staff_tag=staff_tag,
        kol_tag=kol_tag,
        tiers=_tiers(
            general,
            [
                ("一般會員", 0, 0, ""),
                ("銀卡", 10_000, 8_000, "銀卡迎新禮"),
                ("金卡", 30_000, 24_000, "金卡迎新禮"),
            ],
        )
        | _tiers(
            enterprise,
            [
                ("銅牌企業", 10_000, 10_000, "企業迎新禮"),
                ("銀牌企業", 200_000, 150_000, "銀牌企業禮"),
                ("金牌企業", 500_000, 400_000, "金牌企業禮"),
            ],
        )
        | _tiers(staff, [("試用期", 0, 0, ""), ("正式員工", 5, 3, ""), ("資深員工", 20, 15, "")])
        | _tiers(kol, [("微型網紅", 0, 0, ""), ("中型網紅", 50_000, 40_000, "")]),
    )
