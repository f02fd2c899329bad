from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own, and the
    # template takes its style from a file: no inline script or style under the site's CSP.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
    path("orders/", views.OrdersView.as_view(), name="orders"),
    path("orders/<str:order_id>/refunds/", views.RefundsView.as_view(), name="refunds"),
    path(
        "orders/<str:order_id>/cancellation/",
        views.CancellationView.as_view(),
        name="cancellation",
    ),
    path("members/", views.MembersView.as_view(), name="members"),
    path("members/<str:external_id>/", views.MemberView.as_view(), name="member"),
    path("members/<str:external_id>/tags/", views.MemberTagsView.as_view(), name="member-tags"),
    path(
        "members/<str:external_id>/tags/<str:tag>/",
        views.MemberTagView.as_view(),
        name="member-tag",
    ),
    path("members/<str:external_id>/points/", views.PointsView.as_view(), name="points"),
    path(
        "members/<str:external_id>/points/entries/",
        views.EntriesView.as_view(),
        name="points-entries",
    ),
    path(
        "members/<str:external_id>/points/earnings/",
        views.EarningsView.as_view(),
        name="points-earnings",
    ),
    path(
        "members/<str:external_id>/points/adjustments/",
        views.AdjustmentsView.as_view(),
        name="points-adjustments",
    ),
    path("tier-calculator/", views.CalculatorView.as_view(), name="tier-calculator"),
]
