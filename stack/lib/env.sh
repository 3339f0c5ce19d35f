# The stack's settings from .env: read by internal/config/envfile.js, the reader the commands use too (its header
# describes the syntax), which prints the entries the environment does not set as NUL-separated NAME=value after
# checking every numeric setting as digits. Nothing is evaluated: a value is exported as the text it is. Sourced by
# stack/stack.sh before common.sh; needs REPO_DIR.

# stack_load_env FILE: export FILE's entries that the environment does not set (a missing file sets nothing); exit 1
# with the reader's message on a malformed line or a bad numeric value, before anything else runs.
stack_load_env() {
  local file=$1 out rc=0 entry key
  command -v node >/dev/null 2>&1 || {
    printf '[stack] error: node is not installed (the stack reads .env with it; see engines in package.json)\n' >&2
    exit 1
  }
  out=$(mktemp)
  node "$REPO_DIR/internal/config/envfile.js" "$file" >"$out" 2>"$out.err" || rc=$?
  if [ "$rc" != 0 ]; then
    printf '[stack] error: %s; nothing was started\n' "$(cat "$out.err")" >&2
    rm -f "$out" "$out.err"
    exit 1
  fi
  while IFS= read -r -d '' entry; do
    # A variable the shell has set (UID, say) stays as it is, like one the environment sets.
    key=${entry%%=*}
    [ -n "${!key+x}" ] && continue
    export "$key=${entry#*=}"
  done <"$out"
  rm -f "$out" "$out.err"
}
