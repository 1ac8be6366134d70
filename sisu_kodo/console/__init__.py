"""The operator console: server-rendered pages at /console over the API's own services."""

from sisu_kodo.console.app import create_console

__all__ = ["create_console"]
