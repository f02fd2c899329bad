"""The shop's API, version 1. Every write goes through the services; nothing here is a rule."""

from .calculator import CalculatorView
from .members import MembersView, MemberTagsView, MemberTagView, MemberView
from .orders import CancellationView, OrdersView, RefundsView
from .points import AdjustmentsView, EarningsView, EntriesView, PointsView

__all__ = [
    "AdjustmentsView",
    "CalculatorView",
    "CancellationView",
    "EarningsView",
    "EntriesView",
    "MemberTagView",
    "MemberTagsView",
    "MemberView",
    "MembersView",
    "OrdersView",
    "PointsView",
    "RefundsView",
]
