"""WSGI entry point: `gunicorn --config web/gunicorn_conf.py web.wsgi:app`."""

from web import create_app

app = create_app()
