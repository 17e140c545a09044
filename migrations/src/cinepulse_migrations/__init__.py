"""Cinepulse warehouse migrations: Alembic revisions written as raw SQL.

Run them with ``cinepulse-migrate upgrade head`` (the Helm pre-install/pre-upgrade hook Job
runs the same command). The DSN comes from ``CINEPULSE_POSTGRES__DSN`` or ``--dsn``.
"""
