"""Webhooks in the admin, in Chromium: an endpoint registered (its secret shown once) and
the delivery log with a redelivery, under the site's CSP."""

import pytest

from api.models import WebhookDelivery
from api.webhooks.sending import send_due
from points.ledger import earn
from tests.factories import MemberFactory
from tests.test_api_browser import admin_page
from tests.test_browser import browser as chromium  # noqa: F401  (a fixture)
from tests.test_browser import shot
from tests.webhook_receiver import start_receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_registers_an_endpoint_and_redelivers_from_the_log(live_server, chromium):  # noqa: F811
    # given: a receiver that fails once, an administrator logged in
    server, receiver = start_receiver()
    receiver.answer_with(500)
    page, problems = admin_page(chromium, live_server.url)

    # when: the endpoint is registered for points.posted
    page.goto(f"{live_server.url}/admin/api/webhookendpoint/add/")
    page.locator("#id_url").fill(receiver.url)
    page.get_by_label("點數入帳").check()
    shot(page, "webhook-endpoint-add.png")
    page.locator("[name=_save]").click()
    page.wait_for_load_state("networkidle")
    shot(page, "webhook-endpoint-created.png")
    secret = page.locator("#webhook-secret").inner_text()

    # and a posting fails once, then the operator redelivers it from the log
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    send_due()
    page.goto(f"{live_server.url}/admin/api/webhookdelivery/")
    shot(page, "webhook-delivery-log.png")
    page.locator("input[name=_selected_action]").first.check()
    page.locator("select[name=action]").select_option("redeliver_selected")
    page.locator("button[name=index]").click()
    page.wait_for_load_state("networkidle")
    send_due()
    page.reload()
    shot(page, "webhook-delivery-redelivered.png")
    server.shutdown()
    server.server_close()

    # then
    assert secret.startswith("whsec_")
    assert page.get_by_text("已送達").first.is_visible()
    assert [r.status for r in [WebhookDelivery.objects.get()]] == ["succeeded"]
    assert len(receiver.received) == 2
    assert problems == []
