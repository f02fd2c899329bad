from .models import Account
from .services import next_expiry, spendable


def points_panel(member):
    account = Account.objects.filter(member=member).first()
    if account is None:
        return None
    return "members/panels/points.html", {
        "account": account,
        "spendable": spendable(member.pk),
        "next_expiry": next_expiry(member.pk),
    }
