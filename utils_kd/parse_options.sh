#!/usr/bin/env bash
# pykd's own implementation of Kaldi's option-parsing convention (sourced, not executed):
#   . utils/parse_options.sh
# turns leading "--some-opt value" (or "--some-opt=value") arguments into assignments
# some_opt=value, but only for variables the calling script already defined (that is what makes
# an option known). "--config FILE" sources FILE first; "--help"/"-h" prints $help_message.
# Parsing stops at the first argument not starting with "--"; the rest stay in "$@".

__po_die() { echo "$0: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message" >&2; else echo "$0: no help message" >&2; fi
      exit 0 ;;
    --config)
      [ $# -ge 2 ] || __po_die "--config needs a file"
      [ -f "$2" ] || __po_die "config file '$2' not found"
      # shellcheck disable=SC1090
      . "$2"; shift 2 ;;
    --config=*)
      __po_file="${1#--config=}"; [ -f "$__po_file" ] || __po_die "config file '$__po_file' not found"
      # shellcheck disable=SC1090
      . "$__po_file"; shift ;;
    --?*)
      __po_arg="${1#--}"
      if [[ "$__po_arg" == *=* ]]; then
        __po_name="${__po_arg%%=*}"; __po_value="${__po_arg#*=}"; shift
      else
        [ $# -ge 2 ] || __po_die "option --$__po_arg needs a value"
        __po_name="$__po_arg"; __po_value="$2"; shift 2
      fi
      __po_var="${__po_name//-/_}"
      [[ "$__po_var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __po_die "invalid option name --$__po_name"
      # An option is known only if the script defined the variable beforehand.
      if ! declare -p "$__po_var" >/dev/null 2>&1; then
        __po_die "unknown option --$__po_name"
      fi
      __po_old="${!__po_var}"
      if [ "$__po_old" = "true" ] || [ "$__po_old" = "false" ]; then
        case "$__po_value" in true|false) ;; *) __po_die "option --$__po_name expects true or false, got '$__po_value'";; esac
      fi
      printf -v "$__po_var" '%s' "$__po_value" ;;
    *) break ;;
  esac
done
unset -f __po_die
unset __po_arg __po_name __po_value __po_var __po_old __po_file
true
