"""The WSGI entry point: `cd code && gunicorn app:app`."""

from relay import create_app

app = create_app()
