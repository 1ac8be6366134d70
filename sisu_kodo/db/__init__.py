"""The ledger: PostgreSQL schema `app`, its migrations and plain SQL repositories.

Repository functions take a connection first and never commit; the caller owns the
transaction. SQL lives only in this package.
"""
