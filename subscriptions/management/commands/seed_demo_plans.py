from django.core.management.base import BaseCommand

from membership.models import Member
from subscriptions import services
from subscriptions.demo import create_demo_plans
from subscriptions.models import Subscription


class Command(BaseCommand):
    help = "Create the seed's four plans and, for the demo, one 進階方案 subscriber."

    def handle(self, *args, **options):
        plans = {p.name: p for p in create_demo_plans()}
        self.stdout.write(f"Plans: {', '.join(plans)}")
        member = Member.objects.filter(external_id="M000002").first()
        if member and not Subscription.objects.exists():
            services.subscribe(member=member, plan=plans["進階方案"], card_token="tok_ok")
            self.stdout.write(f"Demo subscriber: {member.name} (M000002) on 進階方案 → 金卡.")
