#!/usr/bin/env bash
# End-to-end run of the TUI in a real terminal (tmux): prepare a catalog with the CLI (ingest
# the fixture episodes, import the example rights, scan one fixture upload), open `aniprint tui` on it, confirm the first
# match on the Review screen, export the report from the Reports screen, quit, and check the
# CSV: exactly one confirmed row, reviewed by the name given with --who.
#
# Usage: tests/tui_e2e.sh PATH/TO/aniprint [CAPTURE_DIR]
# With CAPTURE_DIR, a text capture of each screen is written there (for the README).
set -euo pipefail

BIN=$(realpath "${1:?usage: tui_e2e.sh BINARY [CAPTURE_DIR]}")
CAPTURES=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
SESSION="aniprint-e2e-$$"
trap 'tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$WORK"' EXIT
CAT="$WORK/catalog"

"$BIN" --catalog "$CAT" -q ingest --no-separate --series "Fixture Show" "$ROOT/fixtures/episodes"
"$BIN" --catalog "$CAT" -q rights import "$ROOT/catalog/rights.example.csv"
"$BIN" --catalog "$CAT" -q scan --no-separate "$ROOT/fixtures/uploads/up01.mp4"

tmux new-session -d -s "$SESSION" -x 110 -y 32 \
  "cd '$WORK' && NO_COLOR=1 '$BIN' --catalog catalog tui --no-separate --who e2e-tester \
     --report report.csv; echo TUI-EXITED \$?; sleep 30"

screen() { tmux capture-pane -p -t "$SESSION"; }

# Wait until the screen shows $1 (fixed string), up to $2 seconds (default 20).
wait_for() {
  local deadline=$((SECONDS + ${2:-20}))
  until screen | grep -qF -- "$1"; do
    if ((SECONDS > deadline)); then
      echo "timed out waiting for: $1" >&2
      screen >&2
      exit 1
    fi
    sleep 0.2
  done
}

send() { tmux send-keys -t "$SESSION" "$@"; }

capture() { [ -z "$CAPTURES" ] || screen >"$CAPTURES/$1.txt"; }

wait_for "1 Library"
wait_for "Series / episodes"
capture library

send 3
wait_for "Uploads ·"
send j
wait_for "Match "
wait_for "Reference"
sleep 1 # let the spectrograms arrive
capture review
send c
wait_for "confirmed 1 match"

send 4
wait_for "Ownership records"
capture rights

send 5
wait_for "Report filters"
send x
wait_for "Last export"
capture reports

send 2
wait_for "Jobs ("
capture jobs

send q
wait_for "TUI-EXITED 0"

CSV="$WORK/report.csv"
[ -s "$CSV" ] || { echo "no report written" >&2; exit 1; }
# Quoted cells (lists like "CN,KR") are blanked so that awk can split on commas; the columns
# checked never need quotes.
plain() { sed -E 's/"[^"]*"//g' "$CSV"; }
col() { head -1 "$CSV" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
status_col=$(col status)
reviewer_col=$(col reviewer)
match_col=$(col match_id)
confirmed=$(plain | awk -F, -v s="$status_col" -v m="$match_col" 'NR>1 && $s=="confirmed"{print $m}' | sort -u | wc -l)
pending=$(plain | awk -F, -v s="$status_col" -v m="$match_col" 'NR>1 && $s=="pending"{print $m}' | sort -u | wc -l)
reviewers=$(plain | awk -F, -v s="$status_col" -v r="$reviewer_col" 'NR>1 && $s=="confirmed"{print $r}' | sort -u)
if [ "$confirmed" -ne 1 ] || [ "$reviewers" != "e2e-tester" ] || [ "$pending" -lt 1 ]; then
  echo "unexpected report: $confirmed confirmed match(es) (reviewers '$reviewers'), $pending pending" >&2
  cat "$CSV" >&2
  exit 1
fi
echo "tui e2e ok: the report has 1 confirmed match (reviewer $reviewers) and $pending pending"
