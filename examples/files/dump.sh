#!/bin/sh
set -e
pg_dumpall -h pg-0.pg -U postgres | gzip > "/dumps/$(date +%F).sql.gz"
