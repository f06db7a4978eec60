"""Keep rotator's state in SQL: SQLite by default, PostgreSQL with ROTATOR_DATABASE_URL."""
