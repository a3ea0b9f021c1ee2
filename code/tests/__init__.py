"""The relay's tests. The relay runs on gevent's cooperative sockets
(`serve.py` patches before anything else is imported); the tests run it the
same way, patched here, before pytest imports any test module."""

import os

os.environ.setdefault("GEVENT_RESOLVER", "ares")

from gevent import monkey  # noqa: E402

monkey.patch_all()
