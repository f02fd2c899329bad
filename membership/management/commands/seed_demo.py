"""Demo data: seed 000's four-group programme, a few thousand members, and demo logins.

Safe to run again: it only fills what is missing. Refuses to run with DEBUG off.
"""

import datetime as dt
import random

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.test.utils import override_settings
from django.utils import timezone

from jobs.services import run as run_job
from membership import services
from membership.models import (
    Cause,
    Member,
    MemberTag,
    Metric,
    NudgeKind,
    Order,
    Tag,
    Tier,
    TierBenefit,
    VipGroup,
    Window,
)
from membership.services.nudges import set_nudge_offer
from membership.services.rules import Mode, add_months, local_midnight

# (group, priority, tag, metric, window, tiers)
# tiers: (name, colour, upgrade, retention, % off, pts per NT$100, free shipping, gift, benefits)
PROGRAMME = [
    (
        "KOL 合作",
        1,
        "KOL",
        Metric.SPEND,
        Window.ROLLING_12_MONTHS,
        [
            ("微型網紅", "#8d6e63", 0, 0, 5, 2, False, "新品試用組", ["新品搶先體驗"]),
            (
                "中型網紅",
                "#5c6bc0",
                50_000,
                40_000,
                10,
                3,
                True,
                "聯名商品禮盒",
                ["專屬折扣碼", "新品搶先體驗"],
            ),
            (
                "大型網紅",
                "#d81b60",
                200_000,
                150_000,
                15,
                5,
                True,
                "年度合作禮",
                ["專屬折扣碼", "專案經理", "活動優先邀請"],
            ),
        ],
    ),
    (
        "員工福利",
        2,
        "員工",
        Metric.ORDER_COUNT,
        Window.LIFETIME,
        [
            ("試用期", "#90a4ae", 0, 0, 10, 1, False, "", ["員工價 9 折"]),
            ("正式員工", "#26a69a", 5, 3, 20, 2, True, "", ["員工價 8 折", "免運費"]),
            (
                "資深員工",
                "#00897b",
                20,
                15,
                30,
                3,
                True,
                "年資紀念禮",
                ["員工價 7 折", "免運費", "生日禮金"],
            ),
        ],
    ),
    (
        "企業 VIP",
        3,
        "企業客戶",
        Metric.SPEND,
        Window.CALENDAR_YEAR,
        [
            ("標準企業", "#78909c", 0, 0, 3, 1, False, "企業迎新禮", ["97 折", "基礎服務"]),
            (
                "銀牌企業",
                "#9e9e9e",
                100_000,
                80_000,
                7,
                2,
                True,
                "銀牌企業禮",
                ["93 折", "專屬窗口"],
            ),
            (
                "金牌企業",
                "#f9a825",
                500_000,
                400_000,
                12,
                3,
                True,
                "金牌企業禮",
                ["88 折", "客製報價"],
            ),
            (
                "鑽石企業",
                "#4fc3f7",
                2_000_000,
                1_600_000,
                15,
                5,
                True,
                "鑽石企業禮",
                ["議價", "全方位服務"],
            ),
        ],
    ),
    (
        "全館 VIP",
        4,
        None,
        Metric.SPEND,
        Window.ROLLING_12_MONTHS,
        [
            ("一般會員", "#bdbdbd", 0, 0, 0, 1, False, "", ["生日當月購物金 NT$50"]),
            (
                "銀卡",
                "#9e9e9e",
                10_000,
                8_000,
                5,
                2,
                False,
                "銀卡迎新禮：NT$200 購物金",
                ["全館 95 折", "生日禮 NT$200"],
            ),
            (
                "金卡",
                "#f9a825",
                30_000,
                24_000,
                10,
                3,
                True,
                "金卡迎新禮：精選禮盒",
                ["全館 9 折", "免運費", "生日禮 NT$500"],
            ),
            (
                "鑽石",
                "#4fc3f7",
                100_000,
                80_000,
                15,
                5,
                True,
                "鑽石迎新禮：專屬禮盒",
                ["全館 85 折", "免運費", "專屬客服", "生日禮 NT$1,000"],
            ),
        ],
    ),
]
EXTRA_TAGS = [
    ("生日月", Tag.Kind.SYSTEM),
    ("高消費", Tag.Kind.SYSTEM),
    ("促銷敏感", Tag.Kind.OPERATOR),
]
SURNAMES = "陳林黃張李王吳劉蔡楊許鄭謝郭洪曾邱廖賴周"
GIVEN = [
    "志明",
    "春嬌",
    "雅婷",
    "家豪",
    "怡君",
    "冠宇",
    "淑芬",
    "俊傑",
    "美玲",
    "宗翰",
    "佩君",
    "建宏",
]
CHANNELS = ["web", "app", "store", "line"]


OPERATOR_ROLE = "營運人員"
# The back office's daily tools: members, tiers, orders, points, imports and exports,
# enterprises, plans and subscriptions. The audit log is read, never written by hand.
OPERATOR_APPS = [
    "membership",
    "points",
    "imports",
    "b2b",
    "subscriptions",
    "segments",
    "jobs",  # read-only: how far the nightly jobs got
]
OPERATOR_EXTRA = [
    ("auth", "view_user"),  # to link a member to their login user
    ("axes", "view_accessattempt"),  # to see a locked-out login …
    ("axes", "delete_accessattempt"),  # … and unlock it
]
OPERATOR_NEVER = ["add_auditentry", "change_auditentry", "delete_auditentry"]


REPLAY_MONTHS = 24  # of tier history behind the demo (the KPI backfill reads the last 12)


def create_demo_programme() -> None:
    """The demo programme's groups, tiers and tags; what exists already is left alone."""
    tags = {
        name: Tag.objects.get_or_create(name=name, defaults={"kind": kind})[0]
        for name, kind in EXTRA_TAGS
    }
    for name, priority, tag_name, metric, window, tiers in PROGRAMME:
        group, created = VipGroup.objects.get_or_create(
            name=name,
            defaults={
                "priority": priority,
                "is_default": tag_name is None,
                "metric": metric,
                "window": window,
                "description": f"{name}（示範資料）",
            },
        )
        if tag_name:
            tags[tag_name] = Tag.objects.get_or_create(name=tag_name)[0]
            group.entry_tags.add(tags[tag_name])
        if not created:
            continue
        for rank, (tier_name, colour, up, keep, off, pts, ship, gift, benefits) in enumerate(
            tiers, start=1
        ):
            tier = Tier.objects.create(
                group=group,
                rank=rank,
                name=tier_name,
                badge_colour=colour,
                upgrade_threshold=up,
                retention_threshold=keep,
                discount_percent=off,
                points_per_100=pts,
                free_shipping=ship,
                birthday_perk="生日當月點數加倍" if rank > 1 else "",
                upgrade_gift=gift,
            )
            TierBenefit.objects.bulk_create(
                TierBenefit(tier=tier, position=i, text=text) for i, text in enumerate(benefits)
            )


# The merchant guide's seasonal thresholds (seed 000): 全館 VIP's 銀卡 / 金卡 upgrade
# thresholds in the low season (Q1) and the high season (Q4); retention as the live one.
SEASONS = [
    ("Q1 淡季門檻", 1, 4, {"銀卡": 8_000, "金卡": 25_000}),
    ("Q4 旺季門檻", 10, 13, {"銀卡": 12_000, "金卡": 35_000}),
]


def create_demo_versions() -> None:
    """Version 1 live, and next year's Q1 and Q4 as scheduled seasonal versions."""
    from membership.models import ProgrammeVersion
    from membership.services import versions

    versions.ensure_live_version()
    if ProgrammeVersion.objects.exclude(status=ProgrammeVersion.Status.LIVE).exists():
        return
    today = timezone.localdate()
    for name, start_month, end_month, thresholds in SEASONS:
        draft = versions.create_draft(actor=None, name=name)
        for tier_name, up in thresholds.items():
            row = draft.thresholds.get(tier__group__is_default=True, tier__name=tier_name)
            row.upgrade_threshold = up
            row.retention_threshold = min(row.retention_threshold, up)
            row.save()
        # The season's next start still to come, so loading the demo moves nobody.
        year = today.year if dt.date(today.year, start_month, 1) > today else today.year + 1
        end = dt.date(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
        versions.schedule(
            draft,
            actor=None,
            effective_from=local_midnight(dt.date(year, start_month, 1)),
            ends_on=end,
        )


def operator_role() -> Group:
    """The demo's 營運人員 group with exactly the permissions above (idempotent)."""
    operators, _created = Group.objects.get_or_create(name=OPERATOR_ROLE)
    extra = Q()
    for app_label, codename in OPERATOR_EXTRA:
        extra |= Q(content_type__app_label=app_label, codename=codename)
    operators.permissions.set(
        Permission.objects.filter(Q(content_type__app_label__in=OPERATOR_APPS) | extra).exclude(
            content_type__app_label="membership", codename__in=OPERATOR_NEVER
        )
    )
    return operators


class Command(BaseCommand):
    help = "Load demo data: the four VIP groups, members with orders, and demo logins."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=3000)

    def handle(self, *args, members: int, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo only runs with DJANGO_DEBUG=1: it creates known passwords."
            )
        # Demo members are fictional: their tier e-mails go nowhere.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            with transaction.atomic():
                self._programme()
            if not Member.objects.exists():
                self._members(members)
                job = run_job(kind="recompute")
                self.stdout.write(
                    f"Placed {members} demo members ({job.result.get('gifts', 0)} gifts issued)."
                )
                self._offers()
                self._refund_example()
                self._auto_adjust()
                self.stdout.write(f"{services.compute_nudges()} nudges for this month.")
            self._logins()

    def _auto_adjust(self):
        """The seed's three rules, run as at this quarter's first morning."""
        from membership.services import autoadjust

        autoadjust.ensure_default_rules()
        today = timezone.localdate()
        quarter = dt.date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        made = autoadjust.run_auto_adjust(now=local_midnight(quarter) + dt.timedelta(hours=4))
        self.stdout.write(f"{len(made)} auto-adjust proposals.")

    def _programme(self):
        create_demo_programme()
        create_demo_versions()

    def _members(self, count: int):
        rng = random.Random(2026)
        now = timezone.now()
        tag_ids = dict(Tag.objects.values_list("name", "pk"))
        new_members = [
            Member(
                external_id=f"M{i:06d}",
                name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                phone=f"09{rng.randint(10_000_000, 99_999_999)}",
                email=f"member{i}@example.com",
                joined_at=now - dt.timedelta(days=rng.randint(1, 1500)),
                birthday=dt.date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)),
            )
            for i in range(1, count + 1)
        ]
        Member.objects.bulk_create(new_members, batch_size=1000)
        members = list(Member.objects.values_list("pk", "joined_at"))
        orders, member_tags, last = [], [], {}
        for pk, joined in members:
            roll = rng.random()
            if roll < 0.03:
                member_tags.append(MemberTag(member_id=pk, tag_id=tag_ids["企業客戶"]))
            elif roll < 0.04:
                member_tags.append(MemberTag(member_id=pk, tag_id=tag_ids["員工"]))
            elif roll < 0.05:
                member_tags.append(MemberTag(member_id=pk, tag_id=tag_ids["KOL"]))
            big = 20 if roll < 0.03 else 1
            for j in range(rng.choice([0, 1, 2, 3, 4, 6, 8, 12])):
                placed = max(joined, now - dt.timedelta(days=rng.randint(0, 720)))
                amount = int(rng.lognormvariate(7.6, 0.9)) * big
                orders.append(
                    Order(
                        member_id=pk,
                        external_id=f"D{pk}-{j}",
                        channel=rng.choice(CHANNELS),
                        amount=amount,
                        refunded_amount=amount if rng.random() < 0.03 else 0,
                        placed_at=placed,
                    )
                )
                last[pk] = max(last.get(pk, placed), placed)
        MemberTag.objects.bulk_create(member_tags, batch_size=2000)
        self._replay_months(orders, now)
        for pk, when in last.items():
            Member.objects.filter(pk=pk).update(last_order_at=when)

    def _replay_months(self, orders: list[Order], now: dt.datetime):
        """The last REPLAY_MONTHS month-ends replayed: the orders placed by each arrive, then
        the nightly jobs run as of that midnight (upgrades, and reviews of those due) for
        the members who had joined. The tier history is then the shop's own moves, dated
        when they happened, and the dashboard's twelve-month backfill reads months, not
        one day. Two years, so the last one has reviews (and downgrades) too. Only the
        programme's own jobs write; nobody is e-mailed."""
        orders.sort(key=lambda order: order.placed_at)
        joined = sorted(Member.objects.values_list("joined_at", "pk"))
        first = timezone.localdate(now).replace(day=1)
        written = 0
        for k in range(REPLAY_MONTHS - 1, -1, -1):
            moment = local_midnight(add_months(first, -k))
            arrived = [o for o in orders[written:] if o.placed_at < moment]
            Order.objects.bulk_create(arrived, batch_size=2000)
            written += len(arrived)
            ids = [pk for joined_at, pk in joined if joined_at < moment]
            for mode, cause in [(Mode.UPGRADE, Cause.RECOMPUTE), (Mode.REVIEW, Cause.REVIEW)]:
                services.recompute_members(
                    mode=mode, cause=cause, member_ids=ids, now=moment, notify=False
                )
        Order.objects.bulk_create(orders[written:], batch_size=2000)

    def _refund_example(self):
        """A partial refund recorded as the shop would report it, for the refund lists."""
        order = Order.objects.filter(refunded_amount=0, amount__gte=2_000).order_by("pk").first()
        if order:
            services.record_refund(
                order_id=order.pk, external_id=f"{order.external_id}-R1", amount=order.amount // 4
            )

    def _offers(self):
        for kind, text in [
            # Coupon codes the shop itself honours; the site only shows the text.
            (NudgeKind.ABOUT_TO_UPGRADE, "本週結帳輸入 UPGRADE 享免運，升級就差這一步！"),
            (NudgeKind.STALLED, "回購專屬 9 折：結帳輸入 COMEBACK10（30 天內有效）"),
            (NudgeKind.DOWNGRADE_RISK, "保級禮：下單滿 NT$1,000 折 NT$100（代碼 KEEPVIP）"),
            # Seed 002's temporary perk for a member about to lose a tier.
            (NudgeKind.REVIEW_WARNING, "保級加碼：審核前 7 天內消費享雙倍點數"),
        ]:
            set_nudge_offer(kind=kind, text=text)

    def _logins(self):
        users = get_user_model()
        if not users.objects.filter(username="admin").exists():
            users.objects.create_superuser("admin", "admin@example.com", "admin-demo")
        operators = operator_role()
        if not users.objects.filter(username="operator").exists():
            operator = users.objects.create_user(
                "operator", "operator@example.com", "operator-demo"
            )
            operator.is_staff = True
            operator.save()
            operator.groups.add(operators)
        if not users.objects.filter(username="member").exists():
            user = users.objects.create_user("member", "xiaoming@example.com", "member-demo")
            member = Member.objects.create(
                user=user,
                external_id="DEMO-MEMBER",
                name="王小明",
                phone="0912345678",
                email="xiaoming@example.com",
                joined_at=timezone.now() - dt.timedelta(days=400),
            )
            services.record_order(
                member_id=member.pk,
                external_id="DEMO-1",
                amount=12_000,
                placed_at=timezone.now() - dt.timedelta(days=40),
                channel="web",
            )
