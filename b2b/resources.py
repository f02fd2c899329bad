"""Enterprises with their sub-accounts in a file. See membership.resources."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields

from membership.resources import ListResource

from .models import Enterprise


class EnterpriseResource(ListResource):
    labels = {
        "master__external_id": gettext_lazy("master account number"),
        "sub_accounts": gettext_lazy("sub-accounts"),
    }
    select_related = ("master__tier__group",)
    prefetch_related = ("sub_accounts__member", "sub_accounts__role")
    sub_accounts = fields.Field()

    class Meta:
        model = Enterprise
        fields = (
            "name",
            "business_id",
            "master__external_id",
            "master",
            "master__tier",
            "sub_accounts",
            "contact_name",
            "contact_phone",
            "contact_email",
            "billing_title",
            "billing_address",
            "created_at",
        )

    def dehydrate_sub_accounts(self, enterprise: Enterprise) -> str:
        """One line a sub-account: name, member number and role."""
        return "\n".join(
            _("%(name)s (%(number)s, %(role)s)")
            % {
                "name": sub.member.name,
                "number": sub.member.external_id or "—",
                "role": sub.role.name,
            }
            for sub in enterprise.sub_accounts.all()
        )
