#!/usr/bin/env bash
# Mutation testing of the method's pure functions with mutmut (pip install -e '.[dev]').
#
#   bench/mutation.sh                      engine/method/*.py and engine/decision/*.py
#   bench/mutation.sh rscon subsets        only engine/method/rscon.py and subsets.py
#   bench/mutation.sh decision             only engine/decision/{thresholds,model,regions}.py
#
# mutmut works in a copy of the tree ($MUTATION_DIR, default out/mutation, git-ignored), so the
# work tree is never touched. Measured on 2 shared cores with 2 jobs: cae, maps, mutual_scoring,
# rscon, snamd, subsets and thresholds (1050 mutants) 24 min; point_groups (709) 14 min.
# Only the fast engine tests run (no real data, no GUI, no pretrained backbone): the method and
# session tests built on the fake backbone and FPFH, and the threshold tests.
# Environment: MUTATION_DIR, MUTATION_JOBS (parallel mutants, default 2), MUTATION_KEEP=1 (keep
# earlier results), PYTHON (default .venv).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
work=${MUTATION_DIR:-$repo/out/mutation}
jobs=${MUTATION_JOBS:-2}

modules=("$@")
if [ ${#modules[@]} -eq 0 ]; then
    modules=(cae maps mutual_scoring point_groups rscon snamd subsets decision)
fi
targets=()
for name in "${modules[@]}"; do
    case $name in
        decision) targets+=(engine/decision/thresholds.py engine/decision/model.py
                            engine/decision/regions.py) ;;
        *) [ -f "$repo/engine/method/$name.py" ] || { echo "no engine/method/$name.py" >&2; exit 2; }
           targets+=("engine/method/$name.py") ;;
    esac
done

tests=(
    tests/engine/method
    tests/engine/session/test_session.py
    tests/engine/session/test_subsets_session.py
    tests/engine/session/test_fusion_readout.py
    tests/engine/session/test_cae_end_to_end.py
    tests/engine/decision
)

# refresh the copy; mutmut's results ($work/mutants) are dropped unless MUTATION_KEEP=1, because
# mutmut re-tests only changed source functions, not mutants whose tests changed
mkdir -p "$work"
rm -rf "$work/engine" "$work/tests"
[ "${MUTATION_KEEP:-0}" = 1 ] || rm -rf "$work/mutants"
tar -C "$repo" --exclude=__pycache__ -cf - engine tests pyproject.toml | tar -C "$work" -xf -

{
    echo "[mutmut]"
    echo "source_paths = engine"
    echo "only_mutate ="
    printf '    %s\n' "${targets[@]}"
    echo "pytest_add_cli_args_test_selection ="
    printf '    %s\n' "${tests[@]}"
    echo "pytest_add_cli_args ="
    printf '    %s\n' -p no:cacheprovider -m "not realdata and not slow"
    # torch is not fork-safe once its thread pools ran: fork workers from a clean server
    echo "process_isolation = forkserver"
    echo "use_git_change_detection = false"
} > "$work/setup.cfg"

cd "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
mutmut=("$python" -c "import sys; from mutmut.__main__ import cli; sys.exit(cli())")
# the full log (with mutmut's progress spinner) goes to run.log; print only its milestones
"${mutmut[@]}" run --max-children "$jobs" > run.log 2>&1 || true
tr '\r' '\n' < run.log | grep -E 'done|mutations/second|Stopping|Failed|rror' || true

# summary per module: killed / total (timeouts count as killed, "no tests" as survived)
"${mutmut[@]}" results --all true > results.txt
"$python" - "${targets[@]}" <<'EOF'
import re
import sys

counts = {}
survivors = []
for line in open("results.txt"):
    match = re.match(r"\s*(\S+)__mutmut_(\d+): (.+)", line)
    if not match:
        continue
    name, status = match.group(1), match.group(3).strip()
    module = re.match(r"(.*?)\.x[_ǁ]", name).group(1)  # engine.method.rscon.x_rscon -> module
    killed, total = counts.get(module, (0, 0))
    hit = status in ("killed", "timeout", "caught by type check")
    counts[module] = (killed + hit, total + 1)
    if not hit:
        survivors.append(f"{name}__mutmut_{match.group(2)}: {status}")
all_killed = sum(k for k, _ in counts.values())
all_total = sum(t for _, t in counts.values())
for module, (killed, total) in sorted(counts.items()):
    print(f"{module:40s} {killed:4d} / {total:4d}  {100 * killed / max(1, total):5.1f} %")
print(f"{'total':40s} {all_killed:4d} / {all_total:4d}  {100 * all_killed / max(1, all_total):5.1f} %")
print(f"\n{len(survivors)} not killed (show one with: mutmut show NAME, in the mutation folder):")
print("\n".join(survivors))
EOF
