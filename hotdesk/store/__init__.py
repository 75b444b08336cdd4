"""Storage: the tables, opening and upgrading the database, the audit trail."""
