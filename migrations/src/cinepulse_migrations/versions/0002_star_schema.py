"""star schema: dimensions, bridges and facts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

* ``dim_movie`` is SCD type 1: a changed movie overwrites its row (``updated_at`` moves).
  Reviews and ratings are about the film as it is now; history of TMDB metadata is kept raw in
  MongoDB (``raw.movies``, versioned by fetch time), so nothing is lost by overwriting here.
* ``dim_date`` is filled for 1970-2100 so every fact can reference it.
* Facts are keyed by ``event_id`` (the idempotency key): replaying a batch writes nothing twice.
  They reference ``dim_user`` and ``dim_date``; they do *not* reference ``dim_movie``, because
  an event may arrive before the fetcher has loaded that movie, and such events are valid.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FACT_COMMON = """
        event_id          uuid PRIMARY KEY,
        user_id           text NOT NULL REFERENCES dim_user (user_id),
        movie_id          bigint NOT NULL CHECK (movie_id > 0),
        date_key          integer NOT NULL REFERENCES dim_date (date_key),
        occurred_at       timestamptz NOT NULL,
        received_at       timestamptz,
        session_id        text,
        source_topic      text,
        source_partition  integer,
        source_offset     bigint,
        source_flag       source_flag NOT NULL,
        ingested_at       timestamptz NOT NULL DEFAULT now(),
"""


def _fact_indexes(table: str) -> str:
    return f"""
    CREATE INDEX {table}_movie_idx ON {table} (movie_id, occurred_at);
    CREATE INDEX {table}_user_idx ON {table} (user_id, occurred_at DESC);
    CREATE INDEX {table}_date_idx ON {table} (date_key);
    """


def upgrade() -> None:
    op.execute("""
    CREATE TABLE dim_date (
        date_key      integer PRIMARY KEY,
        date          date NOT NULL UNIQUE,
        year          smallint NOT NULL,
        quarter       smallint NOT NULL CHECK (quarter BETWEEN 1 AND 4),
        month         smallint NOT NULL CHECK (month BETWEEN 1 AND 12),
        day           smallint NOT NULL CHECK (day BETWEEN 1 AND 31),
        iso_week      smallint NOT NULL CHECK (iso_week BETWEEN 1 AND 53),
        day_of_week   smallint NOT NULL CHECK (day_of_week BETWEEN 1 AND 7),
        is_weekend    boolean NOT NULL,
        CHECK (date_key = to_char(date, 'YYYYMMDD')::integer)
    );
    INSERT INTO dim_date
    SELECT to_char(d, 'YYYYMMDD')::integer, d::date,
           extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
           extract(day FROM d), extract(week FROM d), extract(isodow FROM d),
           extract(isodow FROM d) IN (6, 7)
    FROM generate_series('1970-01-01'::date, '2100-12-31'::date, interval '1 day') AS d;

    CREATE TABLE dim_movie (
        movie_id           bigint PRIMARY KEY CHECK (movie_id > 0),
        imdb_id            text,
        title              text NOT NULL,
        original_title     text,
        original_language  text,
        overview           text,
        tagline            text,
        status             text,
        release_date       date,
        runtime_minutes    integer CHECK (runtime_minutes >= 0),
        budget             bigint CHECK (budget >= 0),
        revenue            bigint CHECK (revenue >= 0),
        popularity         double precision CHECK (popularity >= 0),
        vote_average       numeric(3, 1) CHECK (vote_average BETWEEN 0 AND 10),
        vote_count         integer CHECK (vote_count >= 0),
        poster_path        text,
        adult              boolean NOT NULL DEFAULT false,
        source_flag        source_flag NOT NULL,
        first_loaded_at    timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX dim_movie_release_date_idx ON dim_movie (release_date);
    COMMENT ON TABLE dim_movie IS 'SCD type 1: the current TMDB metadata of each movie';

    CREATE TABLE dim_genre (
        genre_id     integer PRIMARY KEY,
        name         text NOT NULL UNIQUE,
        source_flag  source_flag NOT NULL
    );
    CREATE TABLE bridge_movie_genre (
        movie_id     bigint NOT NULL REFERENCES dim_movie (movie_id) ON DELETE CASCADE,
        genre_id     integer NOT NULL REFERENCES dim_genre (genre_id),
        source_flag  source_flag NOT NULL,
        PRIMARY KEY (movie_id, genre_id)
    );
    CREATE INDEX bridge_movie_genre_genre_idx ON bridge_movie_genre (genre_id);

    CREATE TABLE dim_company (
        company_id      integer PRIMARY KEY,
        name            text NOT NULL,
        origin_country  text,
        source_flag     source_flag NOT NULL
    );
    CREATE TABLE bridge_movie_company (
        movie_id     bigint NOT NULL REFERENCES dim_movie (movie_id) ON DELETE CASCADE,
        company_id   integer NOT NULL REFERENCES dim_company (company_id),
        source_flag  source_flag NOT NULL,
        PRIMARY KEY (movie_id, company_id)
    );
    CREATE INDEX bridge_movie_company_company_idx ON bridge_movie_company (company_id);

    CREATE TABLE dim_keyword (
        keyword_id   integer PRIMARY KEY,
        name         text NOT NULL,
        source_flag  source_flag NOT NULL
    );
    CREATE TABLE bridge_movie_keyword (
        movie_id     bigint NOT NULL REFERENCES dim_movie (movie_id) ON DELETE CASCADE,
        keyword_id   integer NOT NULL REFERENCES dim_keyword (keyword_id),
        source_flag  source_flag NOT NULL,
        PRIMARY KEY (movie_id, keyword_id)
    );
    CREATE INDEX bridge_movie_keyword_keyword_idx ON bridge_movie_keyword (keyword_id);

    CREATE TABLE dim_user (
        user_id        text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
        first_seen_at  timestamptz NOT NULL,
        last_seen_at   timestamptz NOT NULL CHECK (last_seen_at >= first_seen_at),
        source_flag    source_flag NOT NULL
    );
    """)
    op.execute(f"""
    CREATE TABLE fact_watch ({FACT_COMMON}
        position_seconds  numeric(10, 2) NOT NULL CHECK (position_seconds >= 0),
        duration_seconds  numeric(10, 2) NOT NULL CHECK (duration_seconds > 0),
        completion_ratio  numeric(5, 4) NOT NULL CHECK (completion_ratio BETWEEN 0 AND 1),
        completed         boolean NOT NULL
    );
    CREATE TABLE fact_rating ({FACT_COMMON}
        rating  numeric(2, 1) NOT NULL
                CHECK (rating BETWEEN 0.5 AND 5.0 AND rating * 2 = trunc(rating * 2))
    );
    CREATE TABLE fact_comment ({FACT_COMMON}
        comment_text        text NOT NULL CHECK (length(comment_text) BETWEEN 1 AND 5000),
        emotion             text CHECK (emotion IN ('anger', 'disgust', 'fear', 'joy',
                                                    'sadness', 'surprise', 'neutral')),
        sentiment           real CHECK (sentiment BETWEEN -1 AND 1),
        emotion_scores      jsonb,
        classifier_version  text
    );
    CREATE TABLE fact_click ({FACT_COMMON}
        target  text NOT NULL
    );
    {_fact_indexes("fact_watch")}
    {_fact_indexes("fact_rating")}
    {_fact_indexes("fact_comment")}
    {_fact_indexes("fact_click")}
    CREATE INDEX fact_comment_emotion_idx ON fact_comment (emotion, occurred_at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE fact_click, fact_comment, fact_rating, fact_watch;
    DROP TABLE dim_user;
    DROP TABLE bridge_movie_keyword, dim_keyword;
    DROP TABLE bridge_movie_company, dim_company;
    DROP TABLE bridge_movie_genre, dim_genre;
    DROP TABLE dim_movie;
    DROP TABLE dim_date;
    """)
