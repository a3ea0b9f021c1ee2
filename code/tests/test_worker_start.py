"""What gunicorn.conf.py does to a worker as it starts, called as gunicorn
calls it: the garbage collector scans neither what start-up built nor a
young generation of every few hundred short-lived objects."""

from __future__ import annotations

import gc
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

CONF = Path(__file__).parents[1] / "gunicorn.conf.py"
PYTHON_DEFAULT_YOUNG = 700


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    # What the file sets in the environment goes again after the test.
    monkeypatch.setenv("GEVENT_RESOLVER", os.environ.get("GEVENT_RESOLVER",
                                                         "ares"))
    spec = importlib.util.spec_from_file_location("gunicorn_conf", CONF)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    thresholds = gc.get_threshold()
    yield module
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_worker_freezes_start_up_and_collects_young_objects_rarely(
        conf: ModuleType) -> None:
    gc.unfreeze()
    _, older, oldest = gc.get_threshold()
    conf.post_worker_init(worker=None)
    assert gc.get_freeze_count() > 1000  # modules, the app: out of scans
    young, *rest = gc.get_threshold()
    assert young >= 20 * PYTHON_DEFAULT_YOUNG
    assert rest == [older, oldest]  # only the young generation changes
