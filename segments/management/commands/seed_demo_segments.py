from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from membership.models import NudgeKind
from membership.services.nudges import set_nudge_offer
from segments.audiences import save_audience
from segments.kpis import take_snapshots
from segments.models import Audience
from segments.services import compute_segments

DEMO_AUDIENCES = [
    ("重要價值客", "RFM 重要價值：近期常買又買得多", "rfm_cell=important_value"),
    ("衰退中的會員", "90 天以上沒有購買，還不到流失", "lifecycle=declining"),
    (
        "本期消費滿 NT$20,000",
        "近 12 個月淨消費至少 NT$20,000",
        "window=rolling_12m&spend_min=20000",
    ),
]


class Command(BaseCommand):
    help = "Demo segments: run the nightly segment and KPI job now, and save three audiences."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo_segments only runs with DJANGO_DEBUG=1.")
        run = compute_segments()
        take_snapshots()
        operator = get_user_model().objects.filter(username="admin").first()
        for name, description, query in DEMO_AUDIENCES:
            if not Audience.objects.filter(name=name).exists():
                save_audience(
                    name=name, description=description, query=QueryDict(query), actor=operator
                )
        # A stronger keep-your-tier gift for the members already slipping away.
        set_nudge_offer(
            kind=NudgeKind.DOWNGRADE_RISK,
            audience=Audience.objects.get(name="衰退中的會員"),
            text="保級加碼：衰退會員限定，下單滿 NT$1,000 折 NT$200（代碼 KEEPVIP200）",
        )
        self.stdout.write(
            f"Segments: {run.buyers} buyers scored, {run.tag_changes} system-tag changes; "
            "KPI snapshots and demo audiences ready."
        )
