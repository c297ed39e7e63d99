"""What turns cost: usage stored with each assistant message as the LLM reported it (or
estimated), GET /usage per day for the user and for the backoffice, /metrics by model."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta

import requests

from tests.support.metrics import settled_scrape, value
from tests.support.stack import BACKOFFICE_SECRET


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def reported_usage(llm_url: str, marker: str) -> dict:
    """The usage the scripted LLM reported for the stream echoing `marker`."""
    streams = requests.get(llm_url.removesuffix("/v1") + "/_streams", timeout=5).json()
    found = [s for s in streams["streams"] if marker in s["head"]]
    assert len(found) == 1, found
    return found[0]["usage"]


def answer(api, user, session_id, client, text: str) -> dict:
    assert api.send_message(user, session_id, text).status_code == 200
    return client.wait_for("mojo_message", lambda m: m["text"] != "")


def usage_of(api, token_or_secret: str, **params) -> dict:
    params.setdefault("from", today())
    params.setdefault("to", today())
    response = api.call("GET", "/usage", token_or_secret, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_usage_stored_equals_what_the_llm_reported(api, user, session_id, connect, llm_url):
    client = connect(user, session_id)
    marker = secrets.token_hex(4)

    message = answer(api, user, session_id, client, f"Cost {marker}")

    reported = reported_usage(llm_url, marker)
    expected = {
        "model": "scripted",
        "prompt_tokens": reported["prompt_tokens"],
        "completion_tokens": reported["completion_tokens"],
        "estimated": False,
    }
    assert message["usage"] == expected
    assert api.messages(user, session_id)[0]["message"]["usage"] == expected


def test_usage_is_estimated_when_the_llm_reports_none(api, user, session_id, connect):
    client = connect(user, session_id)

    message = answer(api, user, session_id, client, "No usage here [llm:usage=0]")

    usage = message["usage"]
    assert usage["estimated"] is True
    assert usage["completion_tokens"] == math.ceil(len(message["text_with_tags"]) / 4)
    assert usage["prompt_tokens"] > 0


def test_usage_totals_equal_the_sum_of_the_messages(api, user, session_id, connect):
    client = connect(user, session_id)
    messages = [answer(api, user, session_id, client, f"Turn {n}") for n in range(3)]

    report = usage_of(api, user.token)

    total = {
        "turns": 3,
        "prompt_tokens": sum(m["usage"]["prompt_tokens"] for m in messages),
        "completion_tokens": sum(m["usage"]["completion_tokens"] for m in messages),
    }
    assert report["total"] == total
    assert report["days"] == [{"date": today(), **total}]


def test_a_second_user_sees_none_of_the_first_users_usage(
    api, user, other_user, session_id, connect
):
    client = connect(user, session_id)
    answer(api, user, session_id, client, "Mine only")

    report = usage_of(api, other_user.token)

    assert report["days"] == []
    assert report["total"] == {"turns": 0, "prompt_tokens": 0, "completion_tokens": 0}


def test_a_user_cannot_read_another_users_usage(api, user, other_user):
    response = api.call("GET", "/usage", other_user.token, params={"user_id": user.user_id})

    assert response.status_code == 403


def test_the_backoffice_reads_one_users_usage_or_everyones(api, user, session_id, connect):
    client = connect(user, session_id)
    answer(api, user, session_id, client, "Billed")

    one = usage_of(api, BACKOFFICE_SECRET, user_id=user.user_id)
    everyone = usage_of(api, BACKOFFICE_SECRET)

    assert one == usage_of(api, user.token)
    assert everyone["total"]["turns"] >= one["total"]["turns"] >= 1
    assert everyone["total"]["prompt_tokens"] >= one["total"]["prompt_tokens"]


def test_the_backoffice_asking_for_an_unknown_user_gets_404(api):
    response = api.call("GET", "/usage", BACKOFFICE_SECRET, params={"user_id": "nobody"})

    assert response.status_code == 404


def test_a_report_without_dates_covers_the_last_30_days(api, user):
    report = usage_of(api, user.token, **{"from": None, "to": None})

    assert report["to"] == today()
    assert report["from"] == (datetime.now(UTC).date() - timedelta(days=29)).isoformat()


def test_bad_report_periods_are_422(api, user):
    for params in (
        {"from": "2026-01-02", "to": "2026-01-01"},
        {"from": "2024-01-01", "to": "2025-01-02"},
        {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "yesterday", "to": "2026-03-01"},
    ):
        response = api.call("GET", "/usage", user.token, params=params)
        assert response.status_code == 422, (params, response.text)
        assert "Invalid field" in response.json()["error"]


def test_title_requests_count_in_the_usage_but_not_as_turns(api, user, connect):
    tasks = api.call("GET", "/user_task", user.token).json()["user_tasks"]
    user_task_pk = next(t["user_task_pk"] for t in tasks if t["task_name"] == "Write an email")
    execution = api.call(
        "PUT", "/user_task_execution", user.token, json={"user_task_pk": user_task_pk}
    ).json()
    client = connect(user, execution["session_id"])
    api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        json={"user_task_execution_pk": execution["user_task_execution_pk"], "inputs": []},
    )
    first = client.wait_for("mojo_message")
    client.wait_for("user_task_execution_title")

    report = usage_of(api, user.token)

    assert report["total"]["turns"] == 1
    assert report["total"]["prompt_tokens"] > first["usage"]["prompt_tokens"]
    assert report["total"]["completion_tokens"] > first["usage"]["completion_tokens"]


def test_tokens_are_counted_in_the_metrics_by_model(api, user, session_id, connect, stack):
    before = settled_scrape(stack.base_url)
    client = connect(user, session_id)
    message = answer(api, user, session_id, client, "Count me")

    after = settled_scrape(stack.base_url)

    for kind in ("prompt", "completion"):
        name = f"system1_llm_{kind}_tokens_total"
        added = value(after, name, model="scripted") - value(before, name, model="scripted")
        assert added >= message["usage"][f"{kind}_tokens"]
