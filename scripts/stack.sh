#!/usr/bin/env bash
# A throwaway pg_alpaca stack in one folder: the cluster, the Alpaca stand-in, the sidecar.
# The one controller is scripts/stackctl.py (`scripts/stack.sh --help` lists the commands).
exec /usr/bin/python3 "$(dirname "$0")/stackctl.py" "$@"
