"""Storage: SQLAlchemy models, the engine and repositories. Repositories never commit."""
