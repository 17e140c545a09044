"""What the offline TMDB server answers from when the TMDB sets are not there (they have no
public download): a seeded synthetic catalogue and minimal response shapes.

* :func:`synthetic_rows`: ``n`` movies (default 300, seed :data:`SEED`) as rows of the TMDB
  5000 CSV's columns (genres, keywords, production companies and countries, spoken
  languages as JSON lists; budget, revenue, runtime, popularity, votes, release dates), so
  they go through the same :func:`~cinepulse_devstack.tmdb_offline.data.movie_from_row` as
  the real set. Movie, keyword and company ids are in ranges TMDB does not use
  (:data:`MOVIE_ID_BASE` and up), so a synthetic movie never overwrites a real one in a
  warehouse that has both; the genres are TMDB's own 19 (ids and English names).
* :func:`minimal_recorded`: the response shapes the recorded examples of ``tmdb-api`` give
  otherwise (the fields of ``/3/movie/{id}`` and of a discover entry, in TMDB's order; the
  genre list), written here, not copied from a recording.

The demo's synthetic events (:func:`cinepulse_devstack.demo_events.synthetic_events`) rate,
watch and comment on these movies, so the warehouse joins them to ``dim_movie``.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from functools import cache

from cinepulse_devstack.tmdb_offline.data import ENGLISH_LANGUAGE_NAMES, Json, Recorded

SEED = 20240501
SIZE = 300
#: synthetic movie ids are MOVIE_ID_BASE + 1 ... MOVIE_ID_BASE + n (TMDB's ids are far below)
MOVIE_ID_BASE = 9_000_000
KEYWORD_ID_BASE = 9_100_000
COMPANY_ID_BASE = 9_200_000

#: the fields of TMDB's ``/3/movie/{movie_id}`` body, in TMDB's order
DETAILS_KEYS = (
    "adult", "backdrop_path", "belongs_to_collection", "budget", "genres", "homepage", "id",
    "imdb_id", "original_language", "original_title", "overview", "popularity", "poster_path",
    "production_companies", "production_countries", "release_date", "revenue", "runtime",
    "spoken_languages", "status", "tagline", "title", "video", "vote_average", "vote_count",
)  # fmt: skip
#: the fields of one ``/3/discover/movie`` result, in TMDB's order
DISCOVER_KEYS = (
    "adult", "backdrop_path", "genre_ids", "id", "original_language", "original_title",
    "overview", "popularity", "poster_path", "release_date", "title", "video", "vote_average",
    "vote_count",
)  # fmt: skip
#: TMDB's movie genres (``/3/genre/movie/list``, English), with how often each is drawn
GENRES = (
    (28, "Action", 9), (12, "Adventure", 7), (16, "Animation", 2), (35, "Comedy", 11),
    (80, "Crime", 5), (99, "Documentary", 1), (18, "Drama", 13), (10751, "Family", 4),
    (14, "Fantasy", 4), (36, "History", 2), (27, "Horror", 3), (10402, "Music", 1),
    (9648, "Mystery", 3), (10749, "Romance", 5), (878, "Science Fiction", 4),
    (10770, "TV Movie", 1), (53, "Thriller", 9), (10752, "War", 1), (37, "Western", 1),
)  # fmt: skip

# Keywords by genre (a movie draws most of its keywords from its genres'), then the general ones.
GENRE_KEYWORDS = {
    28: ["car chase", "explosion", "martial arts", "rescue mission", "bodyguard"],
    12: ["treasure hunt", "expedition", "lost city", "quest", "shipwreck"],
    16: ["talking animals", "hand-drawn", "stop motion", "toy"],
    35: ["road trip", "wedding", "misunderstanding", "roommates", "office"],
    80: ["heist", "detective", "mafia", "undercover", "con artist"],
    99: ["interviews", "archive footage", "nature"],
    18: ["family relationships", "coming of age", "grief", "redemption", "small town"],
    10751: ["holiday", "siblings", "pet", "summer camp"],
    14: ["magic", "dragon", "curse", "fairy tale", "prophecy"],
    36: ["biography", "19th century", "royalty", "revolution"],
    27: ["haunted house", "ghost", "slasher", "possession", "cabin in the woods"],
    10402: ["band", "concert", "singer", "musical"],
    9648: ["whodunit", "amnesia", "missing person", "secret"],
    10749: ["first love", "love triangle", "second chance", "long distance"],
    878: ["time travel", "robot", "space travel", "dystopia", "artificial intelligence"],
    10770: ["based on tv series", "made for tv"],
    53: ["conspiracy", "kidnapping", "hostage", "stalker", "double cross"],
    10752: ["world war ii", "soldier", "resistance", "battle"],
    37: ["sheriff", "gunslinger", "frontier", "cattle drive"],
}
GENERAL_KEYWORDS = [
    "based on novel", "friendship", "revenge", "new york city", "london", "independent film",
    "female protagonist", "father son relationship", "mother daughter relationship", "sequel",
]  # fmt: skip
COMPANIES = (
    ("Northwind Pictures", "US"), ("Silver Lantern Films", "US"), ("Harbor Light Studios", "US"),
    ("Red Maple Entertainment", "CA"), ("Blue Fjord Film", "NO"), ("Thistle & Crown", "GB"),
    ("Meridian Line Productions", "GB"), ("Atelier Lumen", "FR"), ("Casa Sol Cine", "ES"),
    ("Kirschblüte Film", "DE"), ("Sakura Gate", "JP"), ("Han River Pictures", "KR"),
    ("Golden Reel Media", "US"), ("Quiet Owl Films", "US"), ("Paper Moon Studio", "US"),
    ("Iron Bridge Entertainment", "US"), ("Lighthouse Ridge", "AU"), ("Vento Films", "IT"),
)  # fmt: skip
COUNTRIES = {
    "US": "United States of America", "CA": "Canada", "NO": "Norway", "GB": "United Kingdom",
    "FR": "France", "ES": "Spain", "DE": "Germany", "JP": "Japan", "KR": "South Korea",
    "AU": "Australia", "IT": "Italy",
}  # fmt: skip
#: original language by the first company's country; the native name TMDB sends
LANGUAGES = {
    "US": "en", "CA": "en", "GB": "en", "AU": "en", "NO": "no", "FR": "fr", "ES": "es",
    "DE": "de", "JP": "ja", "KR": "ko", "IT": "it",
}  # fmt: skip
NATIVE_NAMES = {
    "en": "English", "no": "Norsk", "fr": "Français", "es": "Español", "de": "Deutsch",
    "ja": "日本語", "ko": "한국어/조선말", "it": "Italiano",
}  # fmt: skip

ADJECTIVES = (
    "Silent", "Last", "Hidden", "Broken", "Golden", "Midnight", "Crimson", "Endless", "Lost",
    "Wild", "Frozen", "Burning", "Secret", "Distant", "Hollow", "Restless", "Electric",
    "Quiet", "Fallen", "Velvet",
)  # fmt: skip
NOUNS = (
    "Harbor", "Orchard", "Signal", "Kingdom", "River", "Witness", "Garden", "Frontier",
    "Lighthouse", "Promise", "Machine", "Season", "Mirror", "Voyage", "Empire", "Summer",
    "Station", "Horizon", "Letter", "Circus",
)  # fmt: skip
PEOPLE = (
    "a retired detective", "two estranged sisters", "a young engineer", "a small-town baker",
    "a disgraced pilot", "an ambitious reporter", "a reluctant heir", "a travelling musician",
    "a night-shift nurse", "a teenage inventor",
)  # fmt: skip
PLOTS = (
    "must solve one last case", "set out to find their missing father",
    "discover a secret that changes everything", "race against time to save their town",
    "are pulled into a dangerous game", "fall for the one person they should not",
    "uncover a conspiracy reaching the very top", "try to win back what they lost",
)  # fmt: skip
TAGLINES = (
    "Some secrets never stay buried.", "Every ending is a new beginning.",
    "Trust no one.", "The journey is the destination.", "Home is where the heart hides.",
    "", "",
)  # fmt: skip


def _title(rng: random.Random, taken: set[str]) -> str:
    pattern = rng.randrange(3)
    adjective, noun, other = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS)
    title = (
        f"The {adjective} {noun}"
        if pattern == 0
        else f"{noun} of the {adjective} {other}"
        if pattern == 1
        else f"{adjective} {noun}"
    )
    n = 2
    base = title
    while title in taken:  # a sequel rather than a duplicate title
        title = f"{base} {n}"
        n += 1
    taken.add(title)
    return title


def _keywords(rng: random.Random, genre_ids: list[int]) -> list[Json]:
    pool = [k for g in genre_ids for k in GENRE_KEYWORDS[g]]
    picked = rng.sample(pool, min(len(pool), rng.randint(2, 5)))
    picked += rng.sample(GENERAL_KEYWORDS, rng.randint(0, 2))
    return [{"id": keyword_id(k), "name": k} for k in dict.fromkeys(picked)]


@cache
def _keyword_ids() -> dict[str, int]:
    names = [k for ks in GENRE_KEYWORDS.values() for k in ks] + GENERAL_KEYWORDS
    return {k: KEYWORD_ID_BASE + i for i, k in enumerate(dict.fromkeys(names), start=1)}


def keyword_id(name: str) -> int:
    return _keyword_ids()[name]


def synthetic_rows(n: int = SIZE, seed: int = SEED) -> list[dict[str, str]]:
    """``n`` seeded synthetic movies as rows of the TMDB 5000 CSV (every cell a string, the
    lists as JSON), ids ``MOVIE_ID_BASE + 1`` to ``MOVIE_ID_BASE + n``. The same ``n`` and
    ``seed`` give the same rows."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    genre_ids = [g for g, _, _ in GENRES]
    genre_weights = [w for _, _, w in GENRES]
    genre_names = {g: name for g, name, _ in GENRES}
    first_day, days = date(1975, 1, 1), (date(2024, 12, 31) - date(1975, 1, 1)).days
    titles: set[str] = set()
    rows = []
    for i in range(1, n + 1):
        genres: list[int] = []
        wanted = rng.choices([1, 2, 3], weights=[3, 5, 3])[0]
        while len(genres) < wanted:
            g = rng.choices(genre_ids, weights=genre_weights)[0]
            if g not in genres:
                genres.append(g)
        companies = rng.sample(range(len(COMPANIES)), rng.choices([1, 2], weights=[3, 2])[0])
        countries = list(dict.fromkeys(COMPANIES[c][1] for c in companies))
        language = LANGUAGES[countries[0]]
        spoken = list(dict.fromkeys([language, *(["en"] if rng.random() < 0.2 else [])]))
        # a long tail: a few very popular movies, most of them little known
        popularity = round(min(rng.paretovariate(1.3) * 4.0, 400.0), 6)
        vote_count = int(popularity * rng.uniform(20, 60))
        budget = 0 if rng.random() < 0.2 else rng.randint(1, 150) * 1_000_000
        revenue = 0 if budget == 0 or rng.random() < 0.1 else int(budget * rng.uniform(0.3, 4.0))
        title = _title(rng, titles)
        rows.append(
            {
                "budget": str(budget),
                "genres": json.dumps([{"id": g, "name": genre_names[g]} for g in genres]),
                "homepage": "",
                "id": str(MOVIE_ID_BASE + i),
                "keywords": json.dumps(_keywords(rng, genres)),
                "original_language": language,
                "original_title": title,
                "overview": f"{rng.choice(PEOPLE).capitalize()} {rng.choice(PLOTS)}.",
                "popularity": str(popularity),
                "production_companies": json.dumps(
                    [{"name": COMPANIES[c][0], "id": COMPANY_ID_BASE + c + 1} for c in companies]
                ),
                "production_countries": json.dumps(
                    [{"iso_3166_1": c, "name": COUNTRIES[c]} for c in countries]
                ),
                "release_date": (first_day + timedelta(days=rng.randrange(days))).isoformat(),
                "revenue": str(revenue),
                "runtime": str(rng.randint(78, 175)),
                "spoken_languages": json.dumps(
                    [{"iso_639_1": lang, "name": NATIVE_NAMES[lang]} for lang in spoken]
                ),
                "status": "Released",
                "tagline": rng.choice(TAGLINES),
                "title": title,
                "vote_average": f"{rng.uniform(4.0, 8.6):.1f}",
                "vote_count": str(vote_count),
            }
        )
    return rows


def minimal_recorded() -> Recorded:
    """The response shapes of ``tmdb-api``'s recorded examples, without the recording: an
    example body per endpoint with TMDB's fields in TMDB's order, the genre list in English."""
    details: Json = {
        "adult": False,
        "backdrop_path": None,
        "belongs_to_collection": None,
        "budget": 1_000_000,
        "genres": [{"id": 18, "name": "Drama"}],
        "homepage": "",
        "id": MOVIE_ID_BASE,
        "imdb_id": None,
        "original_language": "en",
        "original_title": "Example",
        "overview": "An example body with every field of TMDB's movie details.",
        "popularity": 1.0,
        "poster_path": None,
        "production_companies": [
            {"id": COMPANY_ID_BASE, "logo_path": None, "name": "Example", "origin_country": ""}
        ],
        "production_countries": [{"iso_3166_1": "US", "name": "United States of America"}],
        "release_date": "2000-01-01",
        "revenue": 0,
        "runtime": 90,
        "spoken_languages": [
            {"english_name": ENGLISH_LANGUAGE_NAMES["en"], "iso_639_1": "en", "name": "English"}
        ],
        "status": "Released",
        "tagline": "",
        "title": "Example",
        "video": False,
        "vote_average": 5.0,
        "vote_count": 1,
    }
    entry = {**details, "genre_ids": [g["id"] for g in details["genres"]]}
    return Recorded(
        details=details,
        discover={
            "page": 1,
            "results": [{k: entry[k] for k in DISCOVER_KEYS}],
            "total_pages": 1,
            "total_results": 1,
        },
        credits={"id": MOVIE_ID_BASE, "cast": [], "crew": []},
        genres={"genres": [{"id": g, "name": name} for g, name, _ in GENRES]},
        changes={"results": [], "page": 1, "total_pages": 1, "total_results": 0},
    )
