"""Signals other apps listen to. Sent inside the transaction of the change, so a
receiver's writes commit or roll back with it."""

from django.dispatch import Signal

# sender=Order, order=Order, member=Member (with its tier at the time of the order)
order_recorded = Signal()
# sender=Refund, refund=Refund, order=Order
refund_recorded = Signal()
# sender=Order, order=Order (already marked cancelled)
order_cancelled = Signal()
