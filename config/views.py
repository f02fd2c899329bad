from django.http import HttpResponse, HttpResponseServerError

from membership.models import VipGroup


def health(request):
    """For load balancers: the site answers and reads one row by primary key."""
    if VipGroup.objects.order_by("pk").values_list("pk", flat=True).first() is None:
        return HttpResponseServerError("no programme configured", content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
