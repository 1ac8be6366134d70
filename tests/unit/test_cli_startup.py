"""`sisu` starts without the engine: the HTTP commands (runs, submit, approve...) and --help
must not pay for importing DBOS, SQLAlchemy, Alembic or FastAPI (about 2 s per call)."""

from __future__ import annotations

import json
import subprocess
import sys

ENGINE_MODULES = ("dbos", "sqlalchemy", "alembic", "fastapi", "psycopg", "uvicorn")


def test_the_cli_imports_none_of_the_engine_modules() -> None:
    probe = (
        "import json, sys; import sisu_kodo.cli.main; "
        f"print(json.dumps(sorted(m for m in {list(ENGINE_MODULES)!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


def test_a_database_command_still_loads_them_when_it_runs() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from sisu_kodo.cli.main import app; "
        "result = CliRunner().invoke(app, ['db', 'url'], env={'DATABASE_URL': "
        "'postgresql://nobody@127.0.0.1:1/none'}); "
        "print(result.output.strip()); print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    url, loaded = done.stdout.strip().splitlines()[-2:]
    assert url == "postgresql://nobody@127.0.0.1:1/none" and loaded == "True"
