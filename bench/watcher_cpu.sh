#!/bin/sh
# watcher_cpu.sh: how much CPU the watcher uses, as % of one core, while it
# polls an idle target (bench/idle_trackers) with 1, 256 and 1024 inline
# trackers, and with 1 and 256 contention trackers (plain and via a holder).
#
# Usage: watcher_cpu.sh [BUILDDIR]            (`make bench` runs it)
#   PERPETUO_WATCHER       the watcher (default BUILDDIR/libperpetuo/watcher/perpetuo)
#   WATCHER_CPU_SECONDS    how long each row measures (default 10)
#   WATCHER_CPU_POLL       the poll interval in seconds (default 0.05, the
#                          watcher's default)
#   WATCHER_CPU_TRACKERS   tracker counts of the inline rows (default
#                          "1 256 1024")
#   WATCHER_CPU_KINDS      kinds of tracker, a row each per count (default
#                          "inline contention contention-via-holder")
#   WATCHER_CPU_CONTENTION_TRACKERS
#                          tracker counts of the contention rows (default
#                          WATCHER_CPU_TRACKERS if set, else "1 256")
#
# For each row: start idle_trackers [--KIND] N, attach `perpetuo
# --poll-interval P watch PID`, wait until it says it is watching, then read
# the CPU time of both processes, sleep, and read it again. Two sources of
# CPU time:
#   stat   utime+stime from /proc/PID/stat, in clock ticks (1/CLK_TCK s, so
#          over 10 s one tick is 0.1% of a core: too coarse for the goal);
#   sched  se.sum_exec_runtime from /proc/PID/task/*/sched (the scheduler's
#          own nanosecond count), when the kernel provides it.
# The verdict uses `sched` when available, `stat` otherwise. A contention
# row also shows what it adds to the inline row of the same count measured
# just before it (when there is one): per poll, and per tracker and poll.
# Goal: <= 0.1% of one core with 256 inline trackers at the default 0.05 s
# poll (the contention rows have none: a program has one GIL).
set -eu

builddir=${1:-.}
watcher=${PERPETUO_WATCHER:-$builddir/libperpetuo/watcher/perpetuo}
idle=$builddir/bench/idle_trackers
seconds=${WATCHER_CPU_SECONDS:-10}
poll=${WATCHER_CPU_POLL:-0.05}
counts=${WATCHER_CPU_TRACKERS:-1 256 1024}
contention_counts=${WATCHER_CPU_CONTENTION_TRACKERS:-${WATCHER_CPU_TRACKERS:-1 256}}
kinds=${WATCHER_CPU_KINDS:-inline contention contention-via-holder}
goal_trackers=256
goal_pct=0.1

for f in "$watcher" "$idle"; do
  if [ ! -x "$f" ]; then
    echo "watcher_cpu: $f is missing (make bench builds it)" >&2
    exit 1
  fi
done

for kind in $kinds; do
  case $kind in
  inline | contention | contention-via-holder) ;;
  *)
    echo "watcher_cpu: unknown kind '$kind' in WATCHER_CPU_KINDS (inline," \
      "contention, contention-via-holder)" >&2
    exit 2
    ;;
  esac
done

hz=$(getconf CLK_TCK)
tmp=$(mktemp -d)
target_pid=
watcher_pid=
cleanup() {
  [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null || :
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || :
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime+stime of a process, in clock ticks. The command name, in
# parentheses, may hold spaces: count the fields after the last ')'.
stat_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# The scheduler's CPU time of all the process's threads, in ns; empty if the
# kernel has no /proc/PID/task/*/sched.
sched_ns() {
  cat /proc/"$1"/task/*/sched 2>/dev/null |
    awk '$1 == "se.sum_exec_runtime" { ms += $3; n++ }
         END { if (n) printf "%.0f\n", ms * 1e6 }'
}

now_s() { date +%s.%N; }

# Waits up to 10 s for a file to contain a pattern.
wait_for() {
  i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then
      echo "watcher_cpu: timed out waiting for '$2' in $1:" >&2
      cat "$1" >&2
      exit 1
    fi
    sleep 0.05
  done
}

echo "watcher CPU use, poll interval $poll s, $seconds s per row, % of one core"
echo "(stat: utime+stime, 1/$hz s ticks; sched: the scheduler's ns count;"
echo " +us/poll, +ns/tracker: a contention row's watcher CPU per poll minus"
echo " the inline row's with as many trackers, and that per tracker)"
printf '  %-21s %8s  %13s %13s %11s %9s %11s  %13s %13s\n' kind trackers \
  "watcher stat" "watcher sched" "us per poll" "+us/poll" "+ns/tracker" \
  "target stat" "target sched"

# Runs one row: KIND N. Prints its line, and remembers the inline row's
# CPU per poll (inline_N) and, for the goal's row, the verdict's figures.
measure() {
  kind=$1
  n=$2
  option=
  [ "$kind" = inline ] || option=--$kind
  "$idle" $option "$n" >"$tmp/idle.out" &
  target_pid=$!
  wait_for "$tmp/idle.out" '^[0-9]'
  "$watcher" --poll-interval "$poll" watch "$target_pid" 2>"$tmp/watcher.log" &
  watcher_pid=$!
  wait_for "$tmp/watcher.log" 'watching pid'
  sleep 0.5 # let it settle into its poll rhythm

  t0=$(now_s)
  w_ticks0=$(stat_ticks "$watcher_pid")
  w_ns0=$(sched_ns "$watcher_pid")
  t_ticks0=$(stat_ticks "$target_pid")
  t_ns0=$(sched_ns "$target_pid")
  sleep "$seconds"
  t1=$(now_s)
  w_ticks1=$(stat_ticks "$watcher_pid")
  w_ns1=$(sched_ns "$watcher_pid")
  t_ticks1=$(stat_ticks "$target_pid")
  t_ns1=$(sched_ns "$target_pid")

  if ! kill -0 "$watcher_pid" 2>/dev/null; then
    echo "watcher_cpu: the watcher exited early:" >&2
    cat "$tmp/watcher.log" >&2
    exit 1
  fi
  kill "$watcher_pid"
  wait "$watcher_pid" 2>/dev/null || :
  watcher_pid=
  kill "$target_pid"
  wait "$target_pid" 2>/dev/null || :
  target_pid=
  if grep -q 'stall [0-9]' "$tmp/watcher.log"; then
    echo "watcher_cpu: note: the watcher reported a stall of the idle target:" >&2
    grep 'stall [0-9]' "$tmp/watcher.log" >&2
  fi

  base=
  [ "$kind" = inline ] || eval "base=\${inline_$n:-}"
  line=$(awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v poll="$poll" \
    -v kind="$kind" -v n="$n" -v base="$base" \
    -v wk0="$w_ticks0" -v wk1="$w_ticks1" -v wn0="$w_ns0" -v wn1="$w_ns1" \
    -v tk0="$t_ticks0" -v tk1="$t_ticks1" -v tn0="$t_ns0" -v tn1="$t_ns1" '
    function pct_ticks(a, b) { return sprintf("%12.3f%%", (b - a) / hz / (t1 - t0) * 100) }
    function pct_ns(a, b) {
      if (a == "" || b == "") return sprintf("%13s", "n/a")
      return sprintf("%12.4f%%", (b - a) / 1e9 / (t1 - t0) * 100)
    }
    BEGIN {
      polls = (t1 - t0) / poll
      if (wn0 != "" && wn1 != "") {
        us = (wn1 - wn0) / 1e3 / polls
        pct = (wn1 - wn0) / 1e9 / (t1 - t0) * 100; source = "sched"
      } else {
        us = (wk1 - wk0) / hz * 1e6 / polls
        pct = (wk1 - wk0) / hz / (t1 - t0) * 100; source = "stat"
      }
      added = sprintf("%9s", "-"); per_tracker = sprintf("%11s", "-")
      if (base != "") {
        added = sprintf("%+9.1f", us - base)
        per_tracker = sprintf("%+11.1f", (us - base) * 1e3 / n)
      }
      printf "  %-21s %8d  %s %s %11.1f %s %s  %s %s\n", kind, n,
        pct_ticks(wk0, wk1), pct_ns(wn0, wn1), us, added, per_tracker,
        pct_ticks(tk0, tk1), pct_ns(tn0, tn1)
      printf "FIGURES %.3f %.4f %s\n", us, pct, source
    }')
  echo "$line" | grep -v '^FIGURES' || :
  set -- $(echo "$line" | sed -n 's/^FIGURES //p')
  if [ "$kind" = inline ]; then eval "inline_$n=$1"; fi
  if [ "$kind" = inline ] && [ "$n" = "$goal_trackers" ]; then
    verdict="$2 $3"
  fi
}

verdict=
all_counts=$(printf '%s\n' $counts $contention_counts | sort -n -u)
for n in $all_counts; do
  for kind in $kinds; do
    case " $kind " in
    " inline ") list=$counts ;;
    *) list=$contention_counts ;;
    esac
    case " $(echo $list) " in
    *" $n "*) measure "$kind" "$n" ;;
    esac
  done
done

if [ -n "$verdict" ]; then
  set -- $verdict
  met=$(awk -v p="$1" -v g="$goal_pct" 'BEGIN { print (p <= g ? "met" : "MISSED") }')
  echo "goal: watcher <= $goal_pct% of one core with $goal_trackers trackers" \
    "at a $poll s poll: $met ($1% by $2)"
fi
