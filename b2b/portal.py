from django.db.models.expressions import RawSQL

from .models import Enterprise, SubAccount
from .selectors import enterprise_rollup


def enterprise_columns(now) -> dict:
    # Whether the member is an enterprise's master, in the page's one read: most members
    # are neither master nor sub-account, and then the panel asks nothing more.
    return {
        "mastered_enterprise_id": RawSQL(
            "SELECT e.id FROM b2b_enterprise e WHERE e.master_id = membership_member.id", []
        )
    }


def enterprise_panel(member):
    # A sub-account always shares its master's tier, so most members skip this query.
    sub = (
        SubAccount.objects.select_related("enterprise", "role").filter(member=member).first()
        if member.tier_holder_id
        else None
    )
    if sub is None and getattr(member, "mastered_enterprise_id", 0) is None:
        return None
    enterprise = sub.enterprise if sub else Enterprise.objects.filter(master=member).first()
    if enterprise is None:
        return None
    # Only the enterprise's totals: other accounts' orders are not shown to a member.
    return "members/panels/enterprise.html", {
        "enterprise": enterprise,
        "role": sub.role.name if sub else None,
        "rollup": enterprise_rollup(enterprise),
    }
