"""The recorded data the offline TMDB server answers from: TMDB's OpenAPI examples (the
response shapes) and the TMDB 5000 movies CSV (the movies). Without them it answers from
:mod:`~cinepulse_devstack.tmdb_offline.synthetic`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinepulse_common.paths import DATASETS_ENV, dataset_dir

DEFAULT_CSV = dataset_dir("tmdb-5000") / "tmdb_5000_movies.csv"
DEFAULT_OPENAPI = dataset_dir("tmdb-api") / "tmdb-api-openapi.json"

# The CSV's spoken_languages carry only the native name; TMDB also sends ``english_name``.
ENGLISH_LANGUAGE_NAMES = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "bg": "Bulgarian", "bo": "Tibetan",
    "bs": "Bosnian", "ce": "Chechen", "cn": "Cantonese", "co": "Corsican", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "ga": "Irish", "gd": "Gaelic", "gl": "Galician", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "is": "Icelandic",
    "it": "Italian", "iu": "Inuktitut", "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh",
    "km": "Khmer", "ko": "Korean", "kw": "Cornish", "la": "Latin", "ml": "Malayalam",
    "mn": "Mongolian", "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "nv": "Navajo",
    "ny": "Chichewa; Nyanja", "pa": "Punjabi", "pl": "Polish", "ps": "Pushto",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sh": "Serbo-Croatian", "si": "Sinhalese", "sk": "Slovak", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "st": "Sotho", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "wo": "Wolof", "xh": "Xhosa",
    "xx": "No Language", "yi": "Yiddish", "zh": "Mandarin", "zu": "Zulu",
}  # fmt: skip

Json = dict[str, Any]


class DatasetMissingError(FileNotFoundError):
    """A data file the server answers from is not there."""


@dataclass(frozen=True)
class Recorded:
    """The example responses of TMDB's OpenAPI description the server copies shapes from."""

    details: Json
    discover: Json
    credits: Json
    genres: Json
    changes: Json

    @property
    def details_keys(self) -> list[str]:
        return list(self.details)

    @property
    def discover_keys(self) -> list[str]:
        return list(self.discover["results"][0])


def recorded_example(spec: Mapping[str, Any], path: str) -> Json:
    """The recorded 200 example of ``GET path`` (stored as a JSON string), parsed."""
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    example = next(iter(content["examples"].values()))["value"]
    parsed = json.loads(example) if isinstance(example, str) else example
    if not isinstance(parsed, dict):
        raise ValueError(f"the example of {path} is not a JSON object")
    return parsed


def load_recorded(openapi_json: Path) -> Recorded:
    spec = json.loads(require_dataset(openapi_json).read_text(encoding="utf-8"))
    return Recorded(
        details=recorded_example(spec, "/3/movie/{movie_id}"),
        discover=recorded_example(spec, "/3/discover/movie"),
        credits=recorded_example(spec, "/3/movie/{movie_id}/credits"),
        genres=recorded_example(spec, "/3/genre/movie/list"),
        changes=recorded_example(spec, "/3/movie/changes"),
    )


def require_dataset(path: Path) -> Path:
    """``path`` if the file is there, else :class:`DatasetMissingError` naming it and the
    setting that points at the data sets."""
    if not path.is_file():
        raise DatasetMissingError(
            f"data file not found: {path} (`cinepulse-data where` shows where each data set "
            "is looked for; `cinepulse-data fetch` downloads the public ones, the TMDB sets "
            f"come from a mirror: set ${DATASETS_ENV} to a folder holding tmdb-5000/ and "
            "tmdb-api/)"
        )
    return path


def json_list(cell: str) -> list[Json]:
    """A CSV cell holding a JSON list (empty cell, or not a list: ``[]``)."""
    value = json.loads(cell) if cell.strip() else []
    return value if isinstance(value, list) else []


def _int(cell: str) -> int:
    return int(float(cell)) if cell.strip() else 0


def _float(cell: str) -> float:
    return float(cell) if cell.strip() else 0.0


def movie_from_row(row: Mapping[str, str], keys: Sequence[str]) -> Json:
    """A ``/3/movie/{id}`` body from one CSV row, with exactly ``keys`` (the example's, in
    its order): what the CSV has, TMDB's own empty values for what it lacks."""
    companies = [
        {"id": c["id"], "logo_path": None, "name": c["name"], "origin_country": ""}
        for c in json_list(row["production_companies"])
    ]
    languages = [
        {
            "english_name": ENGLISH_LANGUAGE_NAMES.get(lang["iso_639_1"], lang["name"]),
            "iso_639_1": lang["iso_639_1"],
            "name": lang["name"],
        }
        for lang in json_list(row["spoken_languages"])
    ]
    built: Json = {
        "adult": False,
        "backdrop_path": None,
        "belongs_to_collection": None,
        "budget": _int(row["budget"]),
        "genres": [{"id": g["id"], "name": g["name"]} for g in json_list(row["genres"])],
        "homepage": row["homepage"],
        "id": int(row["id"]),
        "imdb_id": None,
        "original_language": row["original_language"],
        "original_title": row["original_title"],
        "overview": row["overview"],
        "popularity": _float(row["popularity"]),
        "poster_path": None,
        "production_companies": companies,
        "production_countries": [
            {"iso_3166_1": c["iso_3166_1"], "name": c["name"]}
            for c in json_list(row["production_countries"])
        ],
        "release_date": row["release_date"].strip(),
        "revenue": _int(row["revenue"]),
        "runtime": _int(row["runtime"]),
        "spoken_languages": languages,
        "status": row["status"] or "Released",
        "tagline": row["tagline"],
        "title": row["title"],
        "video": False,
        "vote_average": _float(row["vote_average"]),
        "vote_count": _int(row["vote_count"]),
    }
    return {k: built.get(k) for k in keys}


@dataclass
class Movie:
    details: Json  # the /3/movie/{id} body without appended parts
    keywords: list[Json]


def movies_from_rows(rows: Iterable[Mapping[str, str]], keys: Sequence[str]) -> dict[int, Movie]:
    """Every row (the TMDB 5000 CSV's columns) as a :class:`Movie`, by id (the first row wins
    on a repeated id)."""
    movies: dict[int, Movie] = {}
    for row in rows:
        details = movie_from_row(row, keys)
        keywords = [{"id": k["id"], "name": k["name"]} for k in json_list(row["keywords"])]
        movies.setdefault(details["id"], Movie(details, keywords))
    return movies


def load_movies(movies_csv: Path, keys: Sequence[str]) -> dict[int, Movie]:
    """Every CSV row as a :class:`Movie`, by id (the first row wins on a repeated id)."""
    csv.field_size_limit(1 << 24)
    with require_dataset(movies_csv).open(newline="", encoding="utf-8") as f:
        return movies_from_rows(csv.DictReader(f), keys)
