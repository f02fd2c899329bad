"""Demo enterprise: a master with purchasing, finance and warehouse sub-accounts."""

import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from django.utils import timezone

from b2b import services
from b2b.models import Enterprise, Role
from membership.services import record_order
from membership.services.members import upsert_member


class Command(BaseCommand):
    help = "Load a demo enterprise (台灣示範科技, 統一編號 22099131) with three sub-accounts."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo_b2b only runs with DJANGO_DEBUG=1.")
        if Enterprise.objects.exists():
            return
        operator = get_user_model().objects.filter(username="operator").first()
        now = timezone.now()
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            # Members are membership's to write: made through its service, like any caller.
            master = upsert_member(
                name="台灣示範科技 採購主管",
                external_id="B2B-MASTER",
                joined_at=now,
                phone="0223456789",
            ).member
            enterprise = services.create_enterprise(
                master=master,
                actor=operator,
                name="台灣示範科技股份有限公司",
                business_id="22099131",
                contact_name="陳經理",
                billing_title="台灣示範科技股份有限公司",
            )
            for i, role in enumerate(Role.objects.order_by("id")[:3]):
                member = upsert_member(
                    name=f"台灣示範科技 {role.name}", external_id=f"B2B-SUB-{i}", joined_at=now
                ).member
                services.add_sub_account(
                    enterprise=enterprise, member=member, role=role, actor=operator
                )
                record_order(
                    member_id=member.pk,
                    external_id=f"B2B-{i}",
                    amount=40_000,
                    placed_at=max(
                        now - dt.timedelta(days=10 * (i + 1)), now.replace(month=1, day=2)
                    ),
                    channel="b2b",
                )
        self.stdout.write(
            "Demo enterprise: 台灣示範科技股份有限公司 (3 sub-accounts, NT$120,000 this year)."
        )
