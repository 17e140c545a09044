"""ETag matching and the answer caches over a stand-in warehouse that counts its queries
(one query per meaning of a request, bounded)."""

from __future__ import annotations

from typing import Any

from cinepulse_api.cache import AnswerCache, Encoded, etag_matches, etag_of, fold_name
from tests.unit.api.fakes import cached_app


def test_etag_is_strong_and_if_none_match_compares_weakly() -> None:
    tag = etag_of(b'{"a":1}')
    assert tag.startswith('"') and tag.endswith('"') and tag == etag_of(b'{"a":1}')
    assert tag != etag_of(b'{"a":2}')
    assert etag_matches(tag, tag)
    assert etag_matches(f'"other", W/{tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches(None, tag)
    assert not etag_matches('"other"', tag)
    assert not etag_matches(tag[1:-1], tag)  # unquoted is not the same tag


def test_the_answer_cache_expires_and_keeps_the_most_recent() -> None:
    now = [0.0]
    cache = AnswerCache(ttl_s=10, entries=2, clock=lambda: now[0])
    a, b, c = (Encoded(x, etag_of(x)) for x in (b"a", b"b", b"c"))
    cache.put(("a",), a)
    cache.put(("b",), b)
    assert cache.get(("a",)) is a  # now the most recently used
    cache.put(("c",), c)  # evicts b, the least recently used
    assert cache.get(("b",)) is None and cache.get(("a",)) is a and cache.get(("c",)) is c
    now[0] = 10.0
    assert cache.get(("a",)) is None  # expired
    off = AnswerCache(ttl_s=0, entries=2, clock=lambda: now[0])
    assert off.put(("a",), a) is a and off.get(("a",)) is None


def test_concurrent_misses_share_one_computation() -> None:
    import asyncio

    cache = AnswerCache(ttl_s=10, entries=8, clock=lambda: 0.0)
    calls = []

    async def compute() -> Encoded:
        calls.append(1)
        await asyncio.sleep(0.01)
        return Encoded(b"x", etag_of(b"x"))

    async def failing() -> Encoded:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    async def main() -> None:
        got = await asyncio.gather(*(cache.get_or_compute(("k",), compute) for _ in range(10)))
        assert len(calls) == 1 and {g.body for g in got} == {b"x"}
        results = await asyncio.gather(
            *(cache.get_or_compute(("f",), failing) for _ in range(3)), return_exceptions=True
        )
        assert len(calls) == 2 and all(isinstance(r, RuntimeError) for r in results)
        assert cache.get(("f",)) is None  # a failure is not kept

    asyncio.run(main())


def test_equivalent_spellings_of_a_request_share_one_query() -> None:
    spellings = [
        "/api/top_movies",
        "/api/top_movies?offset=0",  # a default given
        "/api/top_movies?min_votes=1&window=week",
        "/api/top_movies?window=week&genre_missing=&limit=20&offset=0&min_votes=1",
        "/api/top_movies?min_votes=1&offset=0&limit=20&window=week",  # another order
        "/api/top_movies?offset=00&limit=020",  # another spelling of the numbers
        "/api/top_movies?utm_source=x&offset=0&page=7",  # not parameters of the endpoint
    ]
    with cached_app() as (client, db, _, _now):
        answers = [client.get(url) for url in spellings]
        assert [r.status_code for r in answers] == [200] * len(spellings)
        assert len({r.content for r in answers}) == 1
        assert db.queries == {"top_movies": 1}
        # a different meaning is a different answer
        assert client.get("/api/top_movies", params={"offset": 1}).json()["offset"] == 1
        assert client.get("/api/movies/603").status_code == 200
        assert client.get("/api/movies/0603?x=1").status_code == 200
        assert db.queries == {"top_movies": 2, "movie": 1, "movie_genres": 1, "movie_totals": 1}


def test_a_genre_in_any_ascii_case_shares_one_query_and_echoes_its_spelling() -> None:
    with cached_app() as (client, db, _, _now):
        etags, rest = set(), []
        for spelling in ("Drama", "drama", "DRAMA", "dRaMa"):
            r = client.get("/api/top_movies", params={"genre": spelling, "window": "week"})
            assert r.status_code == 200 and r.json()["genre"] == spelling
            etags.add(r.headers["etag"])
            rest.append(r.json() | {"genre": None})
            trends = client.get("/api/emotion_trends", params={"genre": spelling})
            assert trends.status_code == 200 and trends.json()["genre"] == spelling
        assert len(etags) == 4  # each body echoes its own spelling...
        assert rest[0]["items"] and all(r == rest[0] for r in rest)  # ...and is otherwise one
        assert db.queries == {"genre_ids": 2, "top_movies": 1, "emotion_trends": 1}
        assert client.get("/api/top_movies", params={"genre": "Western"}).status_code == 404
        assert client.get("/api/top_movies", params={"genre": "western"}).status_code == 404
        assert db.queries["genre_ids"] == 4  # a 404 is never kept
    # only ASCII letters fold (every collation's lower() folds them alike)
    assert fold_name("Science FICTION") == "science fiction"
    assert fold_name("ÉPICA") == "Épica" and fold_name(None) is None


def test_the_answer_cache_never_holds_more_than_its_entries() -> None:
    with cached_app(answer_cache_entries=3) as (client, db, _, now):
        app: Any = client.app
        for offset in range(10):
            assert client.get("/api/top_movies", params={"offset": offset}).status_code == 200
            assert len(app.state.answer_cache) <= 3
        assert db.queries["top_movies"] == 10
        client.get("/api/top_movies", params={"offset": 9})  # among the 3 most recent: kept
        assert db.queries["top_movies"] == 10
        client.get("/api/top_movies", params={"offset": 0})  # the least recent: dropped
        assert db.queries["top_movies"] == 11
        # kept CINEPULSE_ANSWER_CACHE_S (10 s), then asked again
        now[0] = 9.9
        client.get("/api/top_movies", params={"offset": 0})
        assert db.queries["top_movies"] == 11
        now[0] = 10.0
        client.get("/api/top_movies", params={"offset": 0})
        assert db.queries["top_movies"] == 12
