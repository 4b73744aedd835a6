"""The incremental iterator: modified-since filter plus an id cursor, one page at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import responses

from integrations.virtuous.errors import ErrorClass, VirtuousError
from tests.integrations.virtuous.conftest import BASE

SINCE = datetime(2026, 11, 1, 6, 30, tzinfo=timezone(timedelta(hours=-6)))  # 12:30 UTC
MODIFIED_AFTER = {"parameter": "Last Modified Date", "operator": "Is After", "value": "2026-11-01T12:30:00Z"}


def _sent_bodies() -> list[dict]:
    return [json.loads(call.request.body) for call in responses.calls]


@responses.activate
def test_gifts_are_paged_with_an_id_cursor(client):
    # given: three pages of two, two, one
    url = f"{BASE}/api/Gift/Query/FullGift"
    responses.post(url, json={"list": [{"id": 5}, {"id": 9}], "total": 5})
    responses.post(url, json={"list": [{"id": 12}, {"id": "15"}], "total": 3})
    responses.post(url, json={"list": [{"id": 20}], "total": 1})
    # when
    ids = [gift["id"] for gift in client.iter_modified_since("gift", SINCE, page_size=2)]
    # then
    assert ids == [5, 9, 12, "15", 20]
    assert [call.request.url for call in responses.calls] == [f"{url}?skip=0&take=2"] * 3
    cursor = [{"parameter": "Gift Id", "operator": "Greater Than", "value": v} for v in ("9", "15")]
    assert _sent_bodies() == [
        {"groups": [{"conditions": [MODIFIED_AFTER]}], "sortBy": "Id", "descending": False},
        {"groups": [{"conditions": [MODIFIED_AFTER, cursor[0]]}], "sortBy": "Id", "descending": False},
        {"groups": [{"conditions": [MODIFIED_AFTER, cursor[1]]}], "sortBy": "Id", "descending": False},
    ]


@responses.activate
def test_contacts_include_archived_and_stop_on_an_empty_page(client):
    url = f"{BASE}/api/Contact/Query/FullContact"
    responses.post(url, json={"list": [{"id": 3}, {"id": 4}], "total": 2})
    responses.post(url, json={"list": [], "total": 0})
    assert [c["id"] for c in client.iter_modified_since("contact", SINCE, page_size=2)] == [3, 4]
    second = _sent_bodies()[1]
    assert second["includeArchived"] is True
    assert second["groups"][0]["conditions"][1] == {
        "parameter": "Contact Id",
        "operator": "Greater Than",
        "value": "4",
    }
    assert len(responses.calls) == 2


@responses.activate
def test_a_cursor_that_does_not_advance_stops_the_iterator(client):
    url = f"{BASE}/api/Gift/Query/FullGift"
    responses.post(url, json={"list": [{"id": 7}, {"id": 8}], "total": 4})
    responses.post(url, json={"list": [{"id": 7}, {"id": 8}], "total": 4})
    seen = []
    with pytest.raises(VirtuousError) as caught:
        seen.extend(client.iter_modified_since("gift", SINCE, page_size=2))
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("resource", "since", "message"),
    [("pledge", datetime(2026, 1, 1, tzinfo=UTC), "resource"), ("gift", datetime(2026, 1, 1), "aware")],
)
def test_iterator_refuses_bad_arguments(client, resource, since, message):
    with responses.RequestsMock() as mock, pytest.raises(ValueError, match=message):
        next(client.iter_modified_since(resource, since))
    assert len(mock.calls) == 0
