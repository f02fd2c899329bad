from django.dispatch import receiver

from membership.signals import order_cancelled, order_recorded, refund_recorded

from . import rewards, services


@receiver(order_recorded)
def award_order_points(sender, order, member_id, tier_id, **kwargs):
    earning = services.order_earning(order=order, tier_id=tier_id)
    services.earn_for_order(order=order, earning=earning)
    if earning.referred:
        rewards.reward_referral(order=order)


@receiver(refund_recorded)
def reverse_refunded_points(sender, refund, order, **kwargs):
    services.reverse_for_refund(order=order, refund_key=f"{order.pk}:{refund.external_id}")
    rewards.reverse_referral_share(order=order, refund_key=f"{order.pk}:{refund.external_id}")


@receiver(order_cancelled)
def reverse_cancelled_points(sender, order, **kwargs):
    services.reverse_for_refund(order=order, refund_key=f"{order.pk}:cancelled")
    rewards.reverse_referral_share(order=order, refund_key=f"{order.pk}:cancelled")
