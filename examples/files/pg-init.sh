#!/bin/sh
# first start only: a role for the replicas
psql -v ON_ERROR_STOP=1 -U postgres -c "CREATE ROLE replicator WITH REPLICATION LOGIN"
