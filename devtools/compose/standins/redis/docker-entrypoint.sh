#!/bin/sh
# As the official image's entrypoint: redis-server runs as the redis user and owns /data.
set -e
if [ "$1" = "redis-server" ] && [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec gosu redis "$@"
fi
exec "$@"
