"""The admin page's OAuth clients, plugins and dead-letter sections in a real browser."""

from __future__ import annotations

import re
import secrets

from playwright.sync_api import BrowserContext, Page, expect

from autoreduce import __version__
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.transport.sql import SqlTransport
from tests.browser.conftest import assert_accessible
from tests.browser.helpers import sign_in_as
from tests.facility import Facility
from tests.polling import wait_for


def test_an_admin_creates_a_client_sees_its_secret_once_and_revokes_it(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="root", role="admin")
    name = f"pipe-{secrets.token_hex(3)}"
    page.goto("/admin#clients")
    expect(page.get_by_role("heading", name="OAuth clients")).to_be_visible()
    form = page.get_by_role("group", name="Create an OAuth client")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Role").select_option("detector")
    form.get_by_role("button", name="Create client").click()

    expect(page.get_by_role("heading", name=f"Client {name} created")).to_be_visible()
    client_id = page.get_by_label("Client id").input_value()
    secret = page.get_by_label("Client secret").input_value()
    assert re.fullmatch(r"arc_[0-9a-f]{24}", client_id) and secret.startswith("ars_")
    assert_accessible(page)

    page.get_by_role("link", name="Back to the OAuth clients").click()
    row = page.locator("table.clients").get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("Live")
    expect(row).to_contain_text(client_id)
    assert secret not in page.content()

    row.get_by_role("button", name=f"Revoke client {name}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Client {client_id} is revoked")
    expect(page.locator("table.clients").get_by_role("row").filter(has_text=name)).to_contain_text(
        "Revoked"
    )
    expect(page.locator("table.audit")).to_contain_text(f"client {name}")


def test_the_built_in_plugins_are_listed_approved(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="root", role="admin")
    page.goto("/admin#plugins")
    row = page.locator("#plugin-noop")
    expect(row).to_contain_text("Approved")
    expect(row).to_contain_text(__version__)
    expect(row).to_contain_text("GEM, WISH")
    expect(row.get_by_role("button", name=re.compile("Revoke plugin noop"))).to_be_visible()
    expect(row.get_by_role("button", name=re.compile("Approve plugin"))).to_have_count(0)
    assert_accessible(page)


def _queue(facility: Facility) -> SqlTransport:
    return SqlTransport(
        f"sqlite:///{facility.root / 'data' / 'autoreduce.db'}", consumer="browser-test"
    )


def _letter_id(queue: SqlTransport, body: str) -> str | None:
    found = [d.message_id for d in queue.browse(DEAD_LETTER_QUEUE, 10_000) if d.body == body]
    return found[0] if found else None


def test_a_dead_letter_is_listed_with_its_reason_then_replayed_and_purged(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    queue = _queue(web_facility)
    body = f"not a run message {secrets.token_hex(4)}"
    queue.send(PENDING_QUEUE, body)  # a processor takes it and dead-letters it
    first = wait_for(lambda: _letter_id(queue, body), timeout_s=60, what="the dead letter")

    sign_in_as(context, web_facility, name="root", role="admin")
    page.goto("/admin#queue")
    expect(page.get_by_role("heading", name="Queue and dead letters")).to_be_visible()
    link = page.get_by_role("link", name=f"Dead letter {first} (?)")
    expect(link.locator("xpath=ancestor::tr")).to_contain_text("invalid run message")
    assert_accessible(page)

    link.click()
    expect(page.get_by_role("heading", name="Dead letter ?")).to_be_visible()
    expect(page.get_by_label("Message body")).to_have_text(body)
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("Replay onto")).click()
    expect(page.get_by_role("status")).to_contain_text(f"is back on {PENDING_QUEUE}")

    # still not a run message: a processor dead-letters it again, under a new id
    again = wait_for(
        lambda: found if (found := _letter_id(queue, body)) not in (None, first) else None,
        timeout_s=60,
        what="the replayed letter dead-lettered again",
    )
    page.goto(f"/admin/dead-letters/{again}")
    page.get_by_role("button", name="Purge for good").click()
    expect(page.get_by_role("status")).to_contain_text("is purged")
    expect(page.get_by_role("link", name=f"Dead letter {again} (?)")).to_have_count(0)
    assert _letter_id(queue, body) is None
