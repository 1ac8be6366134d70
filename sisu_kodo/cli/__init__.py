"""The `sisu` command line."""
