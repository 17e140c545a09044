"""Metabase (open-source edition) over the analytics views, set up from code. The chart's
hook Job (``metabase.enabled``) runs, in this order::

  python -m cinepulse_metabase prepare-database
      the warehouse side, as the warehouse's owner (CINEPULSE_POSTGRES__DSN): the LOGIN role
      Metabase reads as (a member of cinepulse_readonly and of nothing else, read-only
      sessions), Metabase's own application database and its owner role when the chart
      manages them; then it logs in as the reader with the datasource details below and
      reads every analytics view
  python -m cinepulse_metabase provision
      Metabase's side, through its HTTP API: the first admin on a fresh instance (or a login
      as that admin), then the warehouse datasource created, or updated in place (idempotent);
      then, with CINEPULSE_METABASE__CONTENT_PATH (the chart mounts files/metabase/
      content.json), the collection "Cinepulse" and the analysts' questions and dashboards
      created, updated in place or left alone (:mod:`.content`)

and Metabase's own pod first runs ``wait-database`` (its application database is created by
that hook, after install). Every command prints one JSON summary line on stdout and its
progress on stderr.

Metabase OSS reads no configuration file (``config.yml`` is a Pro/Enterprise feature:
https://www.metabase.com/docs/latest/configuring-metabase/config-file), hence the API. What
is relied on, read in Metabase's source (github.com/metabase/metabase: the files named) and
https://www.metabase.com/docs/latest/api (also the walkthrough "Set up Metabase from code
with the API", https://www.metabase.com/articles/set-up-metabase-from-code-with-the-api,
checked by Metabase against v0.63 and v0.64):

* ``GET /api/health``: 200 ``{"status": "ok"}`` once initialised; 503 while it starts and
  migrates its application database.
* ``GET /api/session/properties`` (no session): the public settings, among them
  ``has-user-setup`` (a boolean) and ``setup-token`` (src/metabase/setup/settings.clj).
* ``POST /api/setup`` ``{"token", "user": {"email", "password", "first_name", "last_name"},
  "prefs": {"site_name"}}``: the first admin, answered with ``{"id": <session>}``; 403 once a
  user exists (src/metabase/setup/api.clj). Current versions take no ``database`` there
  (v0.46's reference still listed one), so the datasource is added as on any instance.
* ``POST /api/session`` ``{"username", "password"}``: ``{"id": <session>}``; 401 for a wrong
  password, 400 "Too many attempts" once throttled (src/metabase/session/api.clj). Later
  calls carry the session in the ``X-Metabase-Session`` header.
* ``GET /api/database``: ``{"data": [...], "total": n}`` (a bare list in old versions: both
  are read). ``POST /api/database`` ``{"name", "engine", "details", "is_full_sync", ...}`` and
  ``PUT /api/database/:id`` (same keys) test the connection first and answer 400 with
  ``{"message": ...}`` when Metabase cannot connect (src/metabase/warehouses/api.clj). The
  ``postgres`` details: ``host``, ``port``, ``dbname``, ``user``, ``password``, ``ssl`` and
  ``schema-filters-type`` / ``schema-filters-patterns`` (only the analytics schema is synced).
* ``PUT /api/setting/anon-tracking-enabled`` ``{"value": false}``: ``POST /api/setup`` turns
  Metabase's anonymous usage tracking on; it is turned off again on every run.

The questions and dashboards (:mod:`.content`; a malli schema refused answers 400 with
``{"errors": {field: message}, "specific-errors": ...}``):

* ``GET /api/collection``: a bare list, the root collection first (its id is ``"root"``),
  each with ``id``, ``name``, ``location``, ``personal_owner_id``, ``archived``.
  ``POST /api/collection`` ``{"name", "description"}``: name a non-blank string, description
  absent, null or non-blank, ``parent_id`` absent for the top level
  (src/metabase/collections/api.clj).
* ``GET /api/collection/:id/items?models=card&models=dashboard``: ``{"data": [{"id",
  "name", "model"}, ...], "total"}``, archived items left out (collections/api.clj).
* ``POST /api/card`` (CardCreateSchema in src/metabase/queries/api/card.clj): ``name``,
  ``dataset_query`` (a map), ``display`` (non-blank) and ``visualization_settings`` (a map)
  required; ``description`` absent, null or non-blank; ``type`` question, model or metric;
  ``collection_id`` a positive integer. The query is a native one against the datasource:
  ``{"database": id, "type": "native", "native": {"query": sql, "template-tags": {}}}``.
  ``PUT /api/card/:id`` (CardUpdateSchema: the same keys, all optional) updates in place;
  ``GET /api/card/:id`` shows it (its ``dataset_query`` in that legacy shape or MBQL 5's
  ``stages[0].native``: both are read).
* ``POST /api/dashboard`` ``{"name", "description", "collection_id"}`` (name non-blank,
  description a string or null) and ``PUT /api/dashboard/:id`` with ``dashcards``
  (DashUpdates and UpdatedDashboardCard in src/metabase/dashboards/api.clj): each dashcard
  ``id`` (an integer, negative for a new one, unique), ``size_x``/``size_y`` positive,
  ``row``/``col`` zero or more, plus ``card_id``; dashcards left out are deleted.
  ``GET /api/dashboard/:id`` shows its ``dashcards`` and ``tabs``. On a dashboard with tabs
  every dashcard needs a ``dashboard_tab_id`` (else 400 "This dashboard has tab, makes sure
  every card has a tab", ``update-dashboard``) and the ``tabs`` (UpdatedDashboardTab: ``id``,
  ``name``) are sent too: those left out are deleted (``do-update-tabs!`` in
  src/metabase/dashboards/models/dashboard_tab.clj). The grid is 24 columns wide.

Settings (:class:`MetabaseSetupSettings`, one class for the three commands): the warehouse
``CINEPULSE_POSTGRES__DSN``; ``CINEPULSE_METABASE__URL``, ``__ADMIN_EMAIL``,
``__ADMIN_PASSWORD``, ``__READER_ROLE``, ``__READER_PASSWORD``, ``__DATASOURCE_NAME``,
``__SCHEMA_NAME``, ``__READY_TIMEOUT_S``, ``__CONTENT_PATH``, ...; Metabase's application database
``CINEPULSE_METABASE__APP_DATABASE__{NAME,USER,PASSWORD,HOST,PORT}`` (when the chart manages
it). A command names the variable it misses.

Exit codes: 0 done; 1 refused (a wrong admin password, a datasource Metabase cannot connect
to, a role or database that cannot be made, a card or dashboard Metabase refuses); 2 bad
configuration (a content file that cannot be read or is not valid); 4 Metabase or PostgreSQL
did not answer in time.

The parts: :mod:`.settings`, :mod:`.database` (the PostgreSQL side), :mod:`.client` (the
Metabase side), :mod:`.content` (the questions and dashboards), :mod:`.cli` (the commands);
this package exports what they offer.
"""

from __future__ import annotations

from cinepulse_metabase.cli import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from cinepulse_metabase.client import (
    Answer,
    MetabaseClient,
    provision,
    wait_until_ready,
)
from cinepulse_metabase.content import (
    Content,
    ContentCard,
    ContentDashboard,
    card_payload,
    load_content,
    native_of,
    provision_content,
)
from cinepulse_metabase.database import (
    check_reader,
    datasource_details,
    datasource_for,
    details_conninfo,
    prepare_database,
    wait_database,
)
from cinepulse_metabase.settings import (
    PROG,
    AppDatabaseSettings,
    ConfigError,
    MetabaseError,
    MetabaseSettings,
    MetabaseSetupSettings,
    NotReady,
)

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "PROG",
    "Answer",
    "AppDatabaseSettings",
    "ConfigError",
    "Content",
    "ContentCard",
    "ContentDashboard",
    "MetabaseClient",
    "MetabaseError",
    "MetabaseSettings",
    "MetabaseSetupSettings",
    "NotReady",
    "card_payload",
    "check_reader",
    "datasource_details",
    "datasource_for",
    "details_conninfo",
    "load_content",
    "main",
    "native_of",
    "prepare_database",
    "provision",
    "provision_content",
    "wait_database",
    "wait_until_ready",
]
