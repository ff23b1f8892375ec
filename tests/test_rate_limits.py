"""Rate limits per client: chat, failed admin sign-ins, the client's address behind trusted proxies, and
counts shared through Redis as replicas share them."""

import pytest
import redis

from tests.conftest import stored

REDIS_URL = "redis://127.0.0.1:6379/7"  # a database of the local Redis kept for these tests


def chat(client, address="203.0.113.7", **headers):
    return client.post("/api/chat", json={"message": "hello"}, headers=headers,
                       environ_base={"REMOTE_ADDR": address})


def test_over_the_chat_limit_a_client_gets_429_with_retry_after_and_nothing_is_stored(make_app):
    app = make_app(chat_rate_limit="3 per minute;100 per day")
    client = app.test_client()

    answered = [chat(client) for _ in range(3)]
    refused = chat(client)
    other_client = chat(client, address="198.51.100.9")

    assert [r.status_code for r in answered] == [200] * 3 and other_client.status_code == 200
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61 and "3 per 1 minute" in refused.get_json()["error"]["message"]
    assert len(stored(app)) == 8  # four answered chats, the refused one left no trace
    assert not any("Retry-After" in r.headers for r in [*answered, other_client])


@pytest.mark.parametrize("hops, limited", [(0, True), (1, False)])
def test_the_client_is_the_address_the_trusted_proxy_saw_and_a_forged_header_is_ignored(make_app, hops, limited):
    client = make_app(chat_rate_limit="1 per minute", proxy_hops=hops).test_client()

    first = chat(client, address="10.0.0.2", **{"X-Forwarded-For": "203.0.113.1"})
    second = chat(client, address="10.0.0.2", **{"X-Forwarded-For": "203.0.113.2"})

    assert first.status_code == 200
    assert second.status_code == (429 if limited else 200)  # without a trusted proxy the header counts for nothing


def test_guessing_the_admin_token_is_limited_using_it_is_not(make_app, admin_headers):
    client = make_app(admin_rate_limit="3 per minute").test_client()

    used = [client.get("/api/stats", headers=admin_headers).status_code for _ in range(10)]
    guesses = [client.get("/api/admin/models", headers={"Authorization": f"Bearer guess-{i}"}).status_code
               for i in range(4)]
    after = client.get("/api/stats", headers=admin_headers)

    assert used == [200] * 10
    assert guesses == [401, 401, 401, 429] and after.status_code == 429


def test_replicas_share_their_counts_through_redis(make_app):
    redis.Redis.from_url(REDIS_URL).flushdb()
    replicas = [make_app(chat_rate_limit="3 per minute", ratelimit_storage_uri=REDIS_URL).test_client()
                for _ in range(2)]

    statuses = [chat(replicas[i % 2]).status_code for i in range(4)]

    assert statuses == [200, 200, 200, 429]
