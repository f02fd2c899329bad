"""Orders and refunds. Recorded through the services, so the member is evaluated at once."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import path
from django.utils.translation import gettext_lazy as _

from membership import services
from membership.admin_views import refund_view
from membership.models import Member, Order, Refund
from membership.resources import OrderResource

from .common import (
    EstimatedCountPaginator,
    ListsPlannedPerValue,
    PlainActionCheckbox,
    QuickListPage,
    ReadOnlyInline,
    ServiceRefusalsAsFormErrors,
    grouped,
)
from .exports import ListExportMixin


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["refunded_at", "external_id", "amount"]


class FixedValuesFilter(admin.SimpleListFilter):
    """A column's values from a setting, not from SELECT DISTINCT over every order."""

    setting = ""

    def lookups(self, request, model_admin):
        return [(value, value) for value in getattr(settings, self.setting)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class SourceFilter(FixedValuesFilter):
    title = _("source")
    parameter_name = "source"
    setting = "ORDER_SOURCES"


class ChannelFilter(FixedValuesFilter):
    title = _("channel")
    parameter_name = "channel"
    setting = "ORDER_CHANNELS"


class OrderAddForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["member", "source", "external_id", "channel", "amount", "placed_at"]

    def clean(self):
        data = super().clean()
        existing = Order.objects.filter(
            source=data.get("source"), external_id=data.get("external_id")
        ).first()
        if existing and (existing.member_id, existing.amount) != (
            getattr(data.get("member"), "pk", None),
            data.get("amount"),
        ):
            raise ValidationError(_("This external id is already used by another order."))
        return data

    def validate_unique(self):
        """Skipped: a repeated (source, external id) with the same content is harmless —
        the service returns the first order — and clean() refuses a conflicting one."""


@admin.register(Order)
class OrderAdmin(
    ListsPlannedPerValue,
    QuickListPage,
    PlainActionCheckbox,
    ServiceRefusalsAsFormErrors,
    ListExportMixin,
    admin.ModelAdmin,
):
    resource_classes = [OrderResource]
    amount_shown = grouped(Order, "amount")
    refunded_shown = grouped(Order, "refunded_amount")
    export_permission = "imports.export_orders"
    streamed_export = "orders"
    list_display = [
        "external_id",
        "source",
        "member",
        "amount_shown",
        "refunded_shown",
        "status",
        "channel",
        "placed_at",
    ]
    list_select_related = ["member"]
    # What the columns show (QuickListPage); the member by their name.
    list_columns = [
        *["source", "external_id", "amount", "refunded_amount", "status", "channel"],
        *["placed_at", "member", "member__name"],
    ]
    list_filter = ["status", SourceFilter, ChannelFilter]
    # An order's or its member's external id, exactly (get_search_results).
    search_fields = ["=external_id", "=member__external_id"]
    autocomplete_fields = ["member"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Fifty rows, as the member list: rendering is most of a page's time at any scale.
    list_per_page = 50
    inlines = [RefundInline]
    readonly_fields = ["refunded_amount", "status", "created_at"]

    def get_search_results(self, request, queryset, search_term):
        """An order by its external id, or a member's orders by theirs, through indexes.

        The member is looked up first (one row by its unique external id), so the list
        is two index scans ORed, not Django's UPPER(col) = UPPER(q) over a join of ten
        million orders. An order's id is unique per source: the known sources lead the
        (source, external id) index.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        members = list(Member.objects.filter(external_id=term).values_list("pk", flat=True))
        by_order = Q(source__in=settings.ORDER_SOURCES, external_id=term)
        return queryset.filter(by_order | Q(member_id__in=members)), False

    def get_inlines(self, request, obj):
        # A new order has no refunds yet; they are recorded on the order's page.
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = OrderAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [f.name for f in Order._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        result = services.record_order(
            member_id=obj.member_id,
            source=obj.source,
            external_id=obj.external_id,
            channel=obj.channel,
            amount=obj.amount,
            placed_at=obj.placed_at,
            actor=request.user,
        )
        obj.pk = result.order.pk
        obj._state.adding = False

    def get_urls(self):
        return [
            path(
                "<int:order_id>/refund/",
                self.admin_site.admin_view(refund_view),
                name="membership_order_refund",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_refund": request.user.has_perm("membership.add_refund"),
        }
        return super().change_view(request, object_id, form_url, extra_context)
