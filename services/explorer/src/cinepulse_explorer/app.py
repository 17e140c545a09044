"""The explorer's page (a Streamlit script; ``cinepulse-explorer`` runs it).

Four tabs: top movies, activity over time, emotion trends, a user's stats and
recommendations. With a login configured, nothing but the login button before it, and the
user tab for the internal role only (:mod:`cinepulse_explorer.auth`). Every query goes through a fresh read-only session of the read-only role
(``analytics`` views only) and its result is cached for ``cache_ttl_s``; a database or
recommender failure is shown as a message in its tab, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, TypeVar

import pandas as pd
import psycopg
import streamlit as st

from cinepulse_common.postgres import connect
from cinepulse_common.settings import load_settings
from cinepulse_explorer import auth, data
from cinepulse_explorer.metrics import timed
from cinepulse_explorer.recommender import (
    Recommendations,
    RecommenderUnavailable,
    fetch_recommendations,
    with_titles,
)
from cinepulse_explorer.settings import ExplorerSettings

F = TypeVar("F", bound=Callable[..., Any])

ALL = "(all)"


@st.cache_resource
def settings() -> ExplorerSettings:
    return load_settings(ExplorerSettings)


def cached(func: F) -> F:
    """``st.cache_data`` with the settings' TTL (failures are not cached: they raise); what
    runs on a cache miss is counted and timed (:func:`cinepulse_explorer.metrics.timed`)."""
    return st.cache_data(ttl=settings().cache_ttl_s, show_spinner=False)(timed(func))  # type: ignore[return-value]


@contextmanager
def warehouse() -> Iterator[psycopg.Connection[Any]]:
    """A short read-only session: every transaction it starts is ``READ ONLY``."""
    with connect(settings().postgres, connect_timeout=5) as conn:
        conn.read_only = True
        yield conn


@cached
def date_span() -> tuple[date, date] | None:
    with warehouse() as conn:
        return data.fetch_date_span(conn)


@cached
def genres() -> list[str]:
    with warehouse() as conn:
        return data.fetch_genres(conn)


@cached
def top_movies(
    date_from: date | None, date_to: date, genre: str | None, min_votes: int, prior_votes: float
) -> data.TopMovies:
    with warehouse() as conn:
        return data.fetch_top_movies(
            conn, date_from, date_to, genre=genre, min_votes=min_votes, prior_votes=prior_votes
        )


@cached
def daily_activity(date_from: date, date_to: date) -> pd.DataFrame:
    with warehouse() as conn:
        return data.fetch_daily_activity(conn, date_from, date_to)


@cached
def genre_daily(date_from: date, date_to: date) -> pd.DataFrame:
    with warehouse() as conn:
        return data.fetch_genre_daily(conn, date_from, date_to)


@cached
def commented_movies() -> pd.DataFrame:
    with warehouse() as conn:
        return data.fetch_commented_movies(conn)


@cached
def emotion_daily(
    date_from: date, date_to: date, movie_id: int | None, genre: str | None
) -> pd.DataFrame:
    with warehouse() as conn:
        return data.fetch_emotion_daily(conn, date_from, date_to, movie_id=movie_id, genre=genre)


@cached
def user_activity(user_id: str) -> dict[str, Any] | None:
    with warehouse() as conn:
        return data.fetch_user_activity(conn, user_id)


@cached
def recent_users() -> list[str]:
    with warehouse() as conn:
        return data.fetch_recent_users(conn)


@cached
def recommendations(user_id: str, k: int) -> Recommendations:
    s = settings()
    key = s.recommender_api_key
    recs = fetch_recommendations(
        s.recommender_url,
        user_id,
        k,
        timeout_s=s.recommender_timeout_s,
        api_key=key.get_secret_value() if key else None,
        key_header=s.recommender_key_header,
    )
    missing = [int(i) for i in recs.items.loc[recs.items["title"].isna(), "movie_id"]]
    if missing:
        with warehouse() as conn:
            titles = data.fetch_movie_titles(conn, missing)
        recs = Recommendations(with_titles(recs.items, titles), recs.strategy, recs.model_version)
    return recs


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _when(at: Any) -> str:
    return "-" if at is None or pd.isna(at) else pd.Timestamp(at).strftime("%Y-%m-%d %H:%M %Z")


def guarded(what: str, render: Callable[[], None]) -> None:
    """Run one tab; a database failure becomes a message in it."""
    try:
        render()
    except psycopg.Error as exc:
        st.error(f"Cannot read {what} from the warehouse: {_reason(exc)}")


def date_range(key: str, span: tuple[date, date], default_days: int) -> tuple[date, date]:
    first, last = span
    start = max(first, last - timedelta(days=default_days - 1))
    picked = st.date_input("Days", value=(start, last), min_value=first, max_value=last, key=key)
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    return start, last  # a range being picked (one end so far): the default until done


# --- tabs -----------------------------------------------------------------------------


def top_movies_tab(span: tuple[date, date]) -> None:
    left, middle, right = st.columns(3)
    window = left.selectbox("Window", list(data.WINDOW_DAYS), index=2, key="top_window")
    genre = middle.selectbox("Genre", [ALL, *genres()], key="top_genre")
    min_votes = right.number_input("Minimum ratings", min_value=1, value=1, key="top_min")
    date_from, date_to = data.window_bounds(window, span[1])
    m = settings().bayes_prior_votes
    ranked = top_movies(date_from, date_to, None if genre == ALL else genre, int(min_votes), m)
    top, c = ranked.movies, ranked.window_mean
    st.caption(
        f"Ratings from {date_from or 'the first day'} to {date_to} (the window ends at the "
        "latest day with data). Ranked by a Bayesian average: v/(v+m)·R + m/(v+m)·C, with v "
        f"a movie's ratings, R their mean, C = {c:.3f} the window's mean rating and m = {m:g}."
        if c is not None
        else f"No rating from {date_from or 'the first day'} to {date_to}."
    )
    if top.empty:
        st.info("No movie has enough ratings in this window (try a wider window or fewer votes).")
        return
    st.dataframe(
        top,
        hide_index=True,
        key="top_table",
        column_config={
            "mean_rating": st.column_config.NumberColumn("mean rating", format="%.2f"),
            "score": st.column_config.NumberColumn("score", format="%.3f"),
            "release_year": st.column_config.NumberColumn("year", format="%d"),
        },
    )
    st.bar_chart(top.head(10), x="title", y="score", horizontal=True, sort="-score")


def activity_tab(span: tuple[date, date]) -> None:
    date_from, date_to = date_range("activity_days", span, 30)
    st.subheader("Events per day")
    metric = st.selectbox("Count", data.ACTIVITY_METRICS, key="activity_metric")
    rows = daily_activity(date_from, date_to)
    if rows.empty:
        st.info("No activity in these days.")
    else:
        wide = data.daily_pivot(
            rows, series="event_type", metric=metric, date_from=date_from, date_to=date_to
        )
        st.line_chart(wide, x_label="day", y_label=metric)
    st.subheader("By genre")
    genre_rows = genre_daily(date_from, date_to)
    if genre_rows.empty:
        st.info("No movie activity in these days.")
        return
    left, right = st.columns([1, 3])
    g_metric = left.selectbox("Count", data.GENRE_METRICS, key="genre_metric")
    choices = sorted({str(g) for g in genre_rows["genre"]})
    default = data.top_series(genre_rows, series="genre", metric=g_metric, n=6)
    picked = right.multiselect("Genres", choices, default=default, key="genre_pick")
    wide = data.daily_pivot(
        genre_rows,
        series="genre",
        metric=g_metric,
        date_from=date_from,
        date_to=date_to,
        keep=picked or default,
    )
    st.line_chart(wide, x_label="day", y_label=g_metric)


def emotions_tab(span: tuple[date, date]) -> None:
    scope = st.radio(
        "Comments of", ["all movies", "a movie", "a genre"], horizontal=True, key="emo_scope"
    )
    movie_id: int | None = None
    genre: str | None = None
    if scope == "a movie":
        movies = commented_movies()
        if movies.empty:
            st.info("No movie has comments yet.")
            return
        labels = {int(r.movie_id): f"{r.title} ({r.comments})" for r in movies.itertuples()}
        movie_id = st.selectbox(
            "Movie (comments)", list(labels), format_func=labels.__getitem__, key="emo_movie"
        )
    elif scope == "a genre":
        genre = st.selectbox("Genre", genres(), key="emo_genre")
    left, right = st.columns([1, 3])
    bucket = left.selectbox("Per", data.BUCKETS, index=1, key="emo_bucket")
    with right:
        date_from, date_to = date_range("emo_days", span, 365)
    trends = data.emotion_trends(emotion_daily(date_from, date_to, movie_id, genre), bucket)
    if trends.empty:
        st.info("No comments for this choice in these days.")
        return
    st.subheader(f"Comments per emotion, per {bucket}")
    # one labelled bar per bucket (a time axis would draw each bucket as a hairline)
    per_bucket = trends.comments.set_axis(trends.comments.index.strftime("%Y-%m-%d"))
    st.bar_chart(per_bucket, x_label=f"{bucket} starting", y_label="comments")
    st.subheader(f"Mean sentiment, per {bucket} (-1 to 1)")
    st.line_chart(trends.sentiment, y="mean_sentiment", x_label=bucket, y_label="sentiment")


def user_tab() -> None:
    users = recent_users()
    if not users:
        st.info("No user in the warehouse yet.")
        return
    user_id = st.selectbox(
        "User (most recently seen first; type any id)",
        users,
        accept_new_options=True,
        key="user_id",
    )
    if not user_id:
        return
    activity = user_activity(str(user_id))
    if activity is None:
        st.warning(f"No user {user_id!r} in the warehouse.")
        return
    cols = st.columns(5)
    mean = activity["mean_rating"]
    cols[0].metric("Watches", int(activity["watches"]))
    cols[1].metric("Ratings", int(activity["ratings"]))
    cols[2].metric("Mean rating", "-" if pd.isna(mean) else f"{float(mean):.2f}")
    cols[3].metric("Comments", int(activity["comments"]))
    cols[4].metric("Clicks", int(activity["clicks"]))
    st.caption(
        f"First seen {_when(activity['first_seen_at'])}, "
        f"last seen {_when(activity['last_seen_at'])}."
    )
    st.subheader("Recommendations")
    k = st.slider("How many", 1, 50, 10, key="rec_k")
    try:
        recs = recommendations(str(user_id), int(k))
    except RecommenderUnavailable as exc:
        st.warning(f"Recommender unavailable: {exc}")
        return
    st.caption(f"strategy {recs.strategy or '-'}, model {recs.model_version or '-'}")
    if recs.items.empty:
        st.info("The recommender has nothing for this user.")
        return
    st.dataframe(recs.items, hide_index=True, key="rec_table")


def main() -> None:
    st.set_page_config(page_title="Cinepulse explorer", page_icon=":clapper:", layout="wide")
    st.title("Cinepulse explorer")
    # before any query: a visitor who is not logged in (login configured) gets no data
    internal = auth.gate(settings().oidc)

    def users() -> None:
        if internal:
            guarded("the user", user_tab)
        else:
            st.warning(auth.NEEDS_INTERNAL)

    try:
        span = date_span()
    except psycopg.Error as exc:
        st.error(f"The warehouse cannot be read: {_reason(exc)}")
        st.stop()
    if span is None:
        st.info("The warehouse has no aggregates yet: run the daily aggregates job first.")
        users()
        return
    st.caption(f"Data from {span[0]} to {span[1]}, read through the analytics views.")
    top, activity, emotions, user = st.tabs(["Top movies", "Activity", "Emotions", "User"])
    with top:
        guarded("the top movies", lambda: top_movies_tab(span))
    with activity:
        guarded("the activity", lambda: activity_tab(span))
    with emotions:
        guarded("the emotions", lambda: emotions_tab(span))
    with user:
        users()


if __name__ == "__main__":
    main()
