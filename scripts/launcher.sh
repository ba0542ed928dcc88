#!/bin/sh
# The `hutch` command, installed by scripts/install-launchers.mjs with node's and the bundle's paths.
# It runs hutch (node) on the bundle. One exception, for speed: an OCI call of start, kill, pause,
# resume, delete or state on a container whose dir has a `direct` file (written by hutch's create; see
# src/engine/oci/direct.ts) goes straight to the executor, as hutch itself would send it, without
# starting node (~25 ms of the ~35 ms such a call costs). Anything this script does not recognise
# exactly goes to node. HUTCH_DIRECT=0 turns the shortcut off; HUTCH_TRACE=1 says when it is taken.
# node reads NODE_EXTRA_CA_CERTS at every start (~40 ms here); hutch needs no extra CAs.
unset NODE_EXTRA_CA_CERTS
node_bin=node
boot=dist/bundle/boot.cjs

# Runs the verb directly and exits, or returns when the call is not one for the shortcut.
run_direct() {
  root=/run/hutch-oci log='' log_format='' debug='' systemd_cgroup='' rootless=''
  # An empty value (`--root=`) is node's: it reads an empty root as the working directory.
  while [ $# -gt 0 ]; do
    case $1 in
      --root|-root) [ $# -ge 2 ] && [ -n "$2" ] || return; root=$2; shift 2 ;;
      --root=?*|-root=?*) root=${1#*=}; shift ;;
      --log|-log) [ $# -ge 2 ] && [ -n "$2" ] || return; log=$2; shift 2 ;;
      --log=?*|-log=?*) log=${1#*=}; shift ;;
      --log-format|-log-format) [ $# -ge 2 ] && [ -n "$2" ] || return; log_format=$2; shift 2 ;;
      --log-format=?*|-log-format=?*) log_format=${1#*=}; shift ;;
      --debug|-debug) debug=1; shift ;;
      --systemd-cgroup|-systemd-cgroup) systemd_cgroup=1; shift ;;
      --rootless|-rootless) [ $# -ge 2 ] && [ -n "$2" ] || return; rootless=$2; shift 2 ;;
      --rootless=?*|-rootless=?*) rootless=${1#*=}; shift ;;
      # The platform matters to create only: later verbs follow the container's record.
      --platform|-platform) [ $# -ge 2 ] && [ -n "$2" ] || return; shift 2 ;;
      --platform=?*|-platform=?*) shift ;;
      *) break ;;
    esac
  done
  case $log_format in ''|text|json) ;; *) return ;; esac
  # node resolves `..` in the root by name, the kernel after symlinks: they may differ, so node's.
  case /$root/ in */../*) return ;; esac
  [ $# -ge 2 ] || return
  verb=$1; shift
  flag='' signal=''
  case $verb in
    start|pause|resume|state) [ $# -eq 1 ] || return ;;
    kill)
      case $1 in --all|-all|-a) flag=--all; shift ;; esac
      case $# in 1) ;; 2) signal=$2 ;; *) return ;; esac
      case $signal in -*) return ;; esac ;;
    delete)
      case $1 in --force|-force|-f) flag=--force; shift ;; esac
      [ $# -eq 1 ] || return ;;
    *) return ;;
  esac
  id=$1
  # runc's id rule; hutch's own dirs start with a dot; an id like a flag is left to node.
  case $id in ''|.*|-*|*[!A-Za-z0-9_+,.-]*) return ;; esac
  dir=$root/$id
  # As runc (and hutch): `delete --force` of a container that does not exist succeeds, silently.
  # dockerd's shim asks for one after every delete; with no dir there is nothing for node to do.
  if [ "$verb" = delete ] && [ -n "$flag" ] && [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    [ "${HUTCH_TRACE:-}" = 1 ] && echo "[hutch direct] delete --force $id: no such container" >&2
    exit 0
  fi
  [ -f "$dir/direct" ] && [ -r "$dir/direct" ] || return
  executor_state='' private_bundle='' caller_bundle='' complete=''
  {
    IFS= read -r format && [ "$format" = 'hutch-direct 1' ] || return
    IFS= read -r verbs || return
    case " $verbs " in *" $verb "*) ;; *) return ;; esac
    set --
    while IFS= read -r word; do
      case $word in
        '@state '*) executor_state=${word#@state } ;;
        '@bundle '*) private_bundle=${word#@bundle } ;;
        '@caller-bundle '*) caller_bundle=${word#@caller-bundle } ;;
        '@globals '*)
          # hutch asks the executor for a state without the caller's flags (no log lines of its own).
          [ "$verb" = state ] && continue
          passed=" ${word#@globals } "
          [ -n "$log" ] && set -- "$@" --log "$log"
          [ -n "$log_format" ] && [ "$log_format" != text ] && set -- "$@" --log-format "$log_format"
          [ -n "$debug" ] && set -- "$@" --debug
          [ -n "$systemd_cgroup" ] && set -- "$@" --systemd-cgroup
          if [ -n "$rootless" ]; then
            case $passed in *' rootless '*) set -- "$@" --rootless "$rootless" ;; esac
          fi ;;
        '@end') complete=1; break ;;
        *) set -- "$@" "$word" ;;
      esac
    done
  } < "$dir/direct"
  [ -n "$complete" ] && [ -n "$executor_state" ] && [ $# -gt 0 ] || return
  set -- "$@" "$verb"
  [ -n "$flag" ] && set -- "$@" "$flag"
  set -- "$@" "$id"
  [ -n "$signal" ] && set -- "$@" "$signal"
  if [ "$verb" = state ]; then
    # runc's state with the caller's bundle (JSON strings, as the direct file has them); a state
    # runc cannot give (the container is lost) or does not lay out as expected is node's to tell.
    [ -n "$private_bundle" ] && [ -n "$caller_bundle" ] || return
    from="\"bundle\": $private_bundle,"
    out=$("$@" 2>/dev/null) || return
    # Go escapes <, >, & and more as \u....; hutch prints them as they are: node's to print.
    case $out in *"$from"*) ;; *) return ;; esac
    case $out in *'\u'*) return ;; esac
    [ "${HUTCH_TRACE:-}" = 1 ] && echo "[hutch direct] $*" >&2
    printf '%s\n' "${out%%"$from"*}\"bundle\": $caller_bundle,${out#*"$from"}"
    exit 0
  fi
  if [ "$verb" != delete ]; then
    [ "${HUTCH_TRACE:-}" = 1 ] && echo "[hutch direct] $*" >&2
    exec "$@"
  fi
  # delete: the executor's delete, then hutch's dir, under the container's lock as hutch takes it.
  # When the executor no longer knows the id, or flock is missing, hutch sorts it out.
  [ -d "$executor_state/$id" ] && [ -f "$dir/lock" ] && command -v flock >/dev/null 2>&1 || return
  [ "${HUTCH_TRACE:-}" = 1 ] && echo "[hutch direct] $*" >&2
  (
    flock -w 30 9 || exit 200
    # Deleted while this call waited, or deleted and made again: the lock held must be the file the
    # dir has now (a new container has a new lock file; the held one's inode cannot be reused).
    [ /dev/fd/9 -ef "$dir/lock" ] && [ -f "$dir/direct" ] || exit 201
    "$@"
    code=$?
    [ $code -ne 0 ] || rm -rf -- "$dir" || exit 1
    exit $code
  ) 9<"$dir/lock"
  code=$?
  # Lock timeout or lost race: hutch gives runc's words for it.
  [ $code -eq 200 ] || [ $code -eq 201 ] && return
  exit $code
}

if [ "${HUTCH_DIRECT:-1}" != 0 ]; then
  case " $* " in
    *' start '*|*' kill '*|*' delete '*|*' pause '*|*' resume '*|*' state '*) run_direct "$@" ;;
  esac
fi
exec "$node_bin" "$boot" "$@"
