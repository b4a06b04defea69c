"""Storage: the catalog (SQLAlchemy), its tables, the vector store, query log, jobs, locks."""
