"""The serving entry points (meterline/api/factory.py), each in a process of its own: the
garbage-collector settings they make are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from meterline.api.factory import GC_OLDER_THRESHOLD, GC_YOUNG_THRESHOLD

PROBE = """
import gc, json, sys
from meterline.api import factory
from meterline.config import Config, Secret
before = gc.get_threshold()
if sys.argv[1] == "env":
    factory.app_from_env()
else:
    factory.serving_app(Config(database_url=sys.argv[2], admin_token=Secret("x")))
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


@pytest.mark.parametrize("entry", ["env", "config"])
def test_serving_processes_freeze_startup_objects_and_collect_young_objects_less_often(
        entry, tmp_path):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "METERLINE_DATABASE_URL": url, "METERLINE_CONFIG": "",
           "METERLINE_WORKERS": "2"}
    if entry == "env":  # the workers' factory expects the database the parent prepared
        subprocess.run([sys.executable, "-m", "meterline.cli", "db", "upgrade"], env=env,
                       check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", PROBE, entry, url], env=env, check=True,
                          capture_output=True, text=True)

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"][0] < GC_YOUNG_THRESHOLD
    assert seen["after"] == [GC_YOUNG_THRESHOLD, GC_OLDER_THRESHOLD, GC_OLDER_THRESHOLD]
    # the app, the price book and the libraries were frozen out of every collection
    assert seen["frozen"] > 50_000
