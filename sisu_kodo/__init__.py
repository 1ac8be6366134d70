"""Sisu-Kodo: a self-hosted control plane for AI agent work."""
