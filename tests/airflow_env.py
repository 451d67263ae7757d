"""A private AIRFLOW_HOME for the test session, set before anything imports Airflow.

Airflow reads its configuration and database location at import time, so this module is imported
first by tests/conftest.py; tests never touch a developer's own Airflow home or database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="nsd-airflow-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)

os.environ["AIRFLOW_HOME"] = str(HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(HOME / "dags")


def migrate_database() -> None:
    """Create the metadata tables the executor reads task states from (a few seconds)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
