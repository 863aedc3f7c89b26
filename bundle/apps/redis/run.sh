#!/bin/sh
# gb-redisslave's run.sh (kubernetes/examples, guestbook/redis-slave): replicate from the
# master Service, found by DNS (redis-master) or, with GET_HOSTS_FROM=env, by the variables
# Kubernetes sets for it (the port too, where upstream fixes 6379). Arguments are passed on
# to redis-server.
set -eu
if [ "${GET_HOSTS_FROM:-dns}" = "env" ]; then
  master="${REDIS_MASTER_SERVICE_HOST:?GET_HOSTS_FROM=env needs REDIS_MASTER_SERVICE_HOST}"
  port="${REDIS_MASTER_SERVICE_PORT:-6379}"
else
  master=redis-master
  port=6379
fi
exec redis-server /etc/redis.conf --replicaof "$master" "$port" "$@"
