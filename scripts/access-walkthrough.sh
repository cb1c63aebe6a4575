#!/usr/bin/env bash
# The README's "Who may see what" walkthrough, runnable: against a running
# `callvault serve` (default http://127.0.0.1:8080) on its data folder.
# Usage: scripts/access-walkthrough.sh [URL]   (run from the data folder's parent)
set -euo pipefail
URL=${1:-http://127.0.0.1:8080}
CALLVAULT=${CALLVAULT:-callvault}

cv() { $CALLVAULT "$@"; }
gql() { # gql TOKEN 'graphql'
  curl -s "$URL/graphql" -H "authorization: Bearer $1" -H 'content-type: application/json' \
    --data-binary "{\"query\": \"$(printf %s "$2" | tr '\n' ' ' | sed 's/"/\\"/g')\"}"; echo; }

ADMIN=$(cv token issue --staff admin)
gql "$ADMIN" 'mutation { grantRole(input: {staffId: "telephony.pbx", role: "telephony"}) { roles { role } } }'
gql "$ADMIN" 'mutation { grantRole(input: {staffId: "anna.agent", role: "agent"}) { roles { role } } }'
gql "$ADMIN" 'mutation { grantRole(input: {staffId: "bob.agent", role: "agent"}) { roles { role } } }'
gql "$ADMIN" 'mutation { grantRole(input: {staffId: "sue.supervisor", role: "supervisor", supervises: ["anna.agent"]}) { roles { role supervises } } }'
gql "$ADMIN" 'mutation { grantRole(input: {staffId: "aino.auditor", role: "auditor"}) { roles { role } } }'

PBX=$(cv token issue --staff telephony.pbx)
ANNA=$(cv token issue --staff anna.agent)
SUE=$(cv token issue --staff sue.supervisor)
AINO=$(cv token issue --staff aino.auditor)

gql "$PBX" 'mutation { startCall(input: {sourceSystem: "pbx", sourceCallId: "W-1", direction: INBOUND, callerNumber: "040 123 4567", serviceNumber: "0295 50 2000", agentId: "anna.agent", agentName: "Anna"}) { call { id } } }'
BOBS=$(gql "$PBX" 'mutation { startCall(input: {sourceSystem: "pbx", sourceCallId: "W-2", direction: INBOUND, callerNumber: "050 765 4321", serviceNumber: "0295 50 2000", agentId: "bob.agent", agentName: "Bob"}) { call { id } } }' | sed 's/.*"id":"\([^"]*\)".*/\1/')
echo "bob's call: $BOBS"

echo '# anna searches: only her own call'
gql "$ANNA" '{ search(purpose: "verification") { items { agentId callerNumber } } }'
echo "# anna opens bob's call: refused"
gql "$ANNA" "{ call(id: \"$BOBS\", purpose: \"verification\") { callerNumber } }"
echo '# sue, supervising anna, searches for quality: anna'"'"'s call, not bob'"'"'s'
gql "$SUE" '{ search(purpose: "quality") { items { agentId callerNumber } } }'
echo '# the telephony system reads nothing'
gql "$PBX" '{ search(purpose: "verification") { items { id } } }'
echo '# aino, the auditor, sees every attempt'
gql "$AINO" '{ accessAudit { items { actorId role kind allowed purpose detail } } }'
