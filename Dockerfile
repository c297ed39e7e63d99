# One image for every role of System1: the web node, the Celery workers, beat, Flower
# and the migrations. docker-compose.yml chooses the role with each service's command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Celery refuses to be comfortable as root, and nothing here needs it.
RUN useradd --create-home --uid 10001 system1
COPY --chown=system1:system1 . .
USER system1

# The web node (gunicorn) and Flower.
EXPOSE 5000 5555

# gunicorn and Celery both stop gracefully on SIGTERM (what `docker stop` sends):
# the web node closes its sockets, a worker finishes its turns and gives back the rest.
STOPSIGNAL SIGTERM
ENV HOST=0.0.0.0 PORT=5000
CMD ["gunicorn", "--config", "web/gunicorn_conf.py", "web.wsgi:app"]
