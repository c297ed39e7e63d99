# One image for every role of System1: the web node, the Celery workers, beat, Flower
# and the migrations. docker-compose.yml chooses the role with each service's command.
#
# BASE_IMAGE: the official Python image; any image with Python 3.11+ whose `python3 -m venv`
# works can stand in (the compose test builds on one made from Debian's packages).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# Dependencies first, in a virtualenv, from requirements.txt only (no test or development
# package): this layer is rebuilt only when requirements.txt changes. PyPI by default; a
# mirror with `--build-arg PIP_INDEX_URL=https://mirror.example/simple/`.
ARG PIP_INDEX_URL
COPY requirements.txt ./
RUN python3 -m venv /opt/venv && pip install -r requirements.txt

# Celery refuses to be comfortable as root, and nothing here needs it. The code stays
# root's: the app user can read it, not change it.
RUN useradd --create-home --no-log-init --uid 10001 system1
COPY . .
USER system1

# The web node (gunicorn) and Flower.
EXPOSE 5000 5555

# The default command's check: the web node answers GET /health (PostgreSQL and Redis
# reachable). docker-compose.yml gives the other roles checks of their own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=3)"]

# gunicorn and Celery both stop gracefully on SIGTERM (what `docker stop` sends):
# the web node closes its sockets, a worker finishes its turns and gives back the rest.
STOPSIGNAL SIGTERM
ENV HOST=0.0.0.0 PORT=5000
CMD ["gunicorn", "--config", "web/gunicorn_conf.py", "web.wsgi:app"]
