"""Storage port (:class:`tidings.store.store.Store`) over two engines: SQLite and PostgreSQL."""
