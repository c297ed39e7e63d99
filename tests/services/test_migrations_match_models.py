"""The migrations build the schema the models describe: Alembic's comparison of the
migrated database with the models finds nothing to change."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from common.db import db


def test_the_migrated_database_matches_the_models(connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})

    differences = compare_metadata(context, db.metadata)

    assert differences == []
