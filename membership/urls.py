from django.urls import path

from . import views

app_name = "members"
urlpatterns = [
    path("", views.my_tier, name="my_tier"),
    path("calculator/", views.calculator, name="calculator"),
    path("orders/<int:order_id>/", views.order_detail, name="order"),
]
