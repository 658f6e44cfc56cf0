"""Persistence: tables, repositories, transactions and migrations (SQLite or PostgreSQL)."""
