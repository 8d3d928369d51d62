# bash completion for tracedump. Install: copy to /usr/share/bash-completion/completions/tracedump
# (or ~/.local/share/bash-completion/completions/tracedump), or in ~/.bashrc:
#   source <(tracedump completion bash)

_tracedump_read() {
  local cur=$1 prev=$2
  case $prev in
    -r|--read) _filedir '@(pcap|pcapng|cap|ntar)'; return ;;
    -t|--time-style) COMPREPLY=($(compgen -W 'clock none epoch delta date since-first' -- "$cur")); return ;;
    --pid|--comm|-c|--count) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '-r --read --json --pid --comm -c --count -t -tt -ttt -tttt -ttttt --time-style --no-number -n -h --help' -- "$cur"))
  else
    _filedir '@(pcap|pcapng|cap|ntar)'
  fi
}

_tracedump_flows() {
  local cur=$1 prev=$2
  case $prev in
    --by) COMPREPLY=($(compgen -W 'process app server proto' -- "$cur")); return ;;
    --splt|--idle|--active|-f|--filter) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '--json --csv --zeek --by --features --splt --idle --active -f --filter -h --help' -- "$cur"))
  else
    _filedir '@(pcap|pcapng|cap|ntar)'
  fi
}

_tracedump_objects() {
  local cur=$1 prev=$2
  case $prev in
    --idle|--active) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '--json --csv --idle --active -h --help' -- "$cur"))
  else
    _filedir '@(pcap|pcapng|cap|ntar)'
  fi
}

_tracedump_stats() {
  local cur=$1 prev=$2
  case $prev in
    --by) COMPREPLY=($(compgen -W 'domain org type proto' -- "$cur")); return ;;
    --app) COMPREPLY=($(compgen -W 'command comm' -- "$cur")); return ;;
    --model|--html|--orgs) _filedir; return ;;
    --window|--idle|--active) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '--json --csv --by --app --window --model --compare --html --orgs --idle --active -h --help' -- "$cur"))
  else
    _filedir
  fi
}

_tracedump_campaign() {
  local cur=$1 prev=$2 n=$3
  case $prev in
    -o|--output) _filedir -d; return ;;
    --label|--catalog|--to) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '-o --output --label --flows --objects --json --csv --catalog --to -h --help' -- "$cur"))
  elif ((n == 2)); then
    COMPREPLY=($(compgen -W 'run ls show export push' -- "$cur"))
  elif [[ ${COMP_WORDS[2]} == run ]]; then
    _filedir '@(yaml|yml)'
  else
    _filedir -d
  fi
}

_tracedump_extcap() {
  local cur=$1 prev=$2 n=$3
  if [[ $prev == --dir ]]; then _filedir -d; return; fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '--system --dir -h --help' -- "$cur"))
  elif ((n == 2)); then
    COMPREPLY=($(compgen -W 'install uninstall' -- "$cur"))
  fi
}

_tracedump() {
  local cur prev words cword
  _init_completion || return

  # the command being traced, once given: complete it as the shell would
  local i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      read)
        if ((i == 1)); then _tracedump_read "$cur" "$prev"; return; fi ;;
      flows)
        if ((i == 1)); then _tracedump_flows "$cur" "$prev"; return; fi ;;
      objects)
        if ((i == 1)); then _tracedump_objects "$cur" "$prev"; return; fi ;;
      stats)
        if ((i == 1)); then _tracedump_stats "$cur" "$prev"; return; fi ;;
      campaign)
        if ((i == 1)); then _tracedump_campaign "$cur" "$prev" "$cword"; return; fi ;;
      extcap)
        if ((i == 1)); then _tracedump_extcap "$cur" "$prev" "$cword"; return; fi ;;
      -r|--read)
        _tracedump_read "$cur" "$prev"; return ;;
      --)
        _command_offset $((i + 1)); return ;;
      -w|--write|-s|--snaplen|-c|--count|--duration|-i|--interface|-f|--filter|-p|--pid|--pname|-u|--user|--keylog|-C|--file-size|-G|--rotate-seconds|-W|--file-count|--linger|--kill-after|-B|--buffer-size|--kernel-filter|-o|--output|--summary-json|--capture-comment|--flows|--flows-idle|--flows-active|--format)
        ((i++)) ;;
      -*) ;;
      *)
        _command_offset $i; return ;;
    esac
  done

  case $prev in
    -w|--write|--keylog|-o|--output|--summary-json|--flows) _filedir; return ;;
    --format) COMPREPLY=($(compgen -W 'pcap pcapng' -- "$cur")); return ;;
    --kernel-filter) COMPREPLY=($(compgen -W 'auto ebpf classic' -- "$cur")); return ;;
    --events) COMPREPLY=($(compgen -W 'text json' -- "$cur")); return ;;
    -i|--interface) COMPREPLY=($(compgen -W "any $(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
    -p|--pid) COMPREPLY=($(compgen -W "$(ps -e -o pid= 2>/dev/null)" -- "$cur")); return ;;
    --pname) COMPREPLY=($(compgen -W "$(ps -e -o comm= 2>/dev/null | sort -u)" -- "$cur")); return ;;
    -u|--user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
    -s|--snaplen|-c|--count|--duration|-f|--filter|-C|--file-size|-G|--rotate-seconds|-W|--file-count|--linger|--kill-after|-B|--buffer-size|--flows-idle|--flows-active|--capture-comment) return ;;
  esac

  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W '-w --write --format -s --snaplen -c --count --duration -i --interface -f --filter -p --pid --pname -u --user --keylog --no-tls-keys -C --file-size -G --rotate-seconds -W --file-count --linger --kill-after -B --buffer-size -U --packet-buffered --kernel-filter --events -o --output --summary-json --capture-comment --flows --flows-idle --flows-active --top -q --quiet -D --list-interfaces -r --read -V --version -h --help' -- "$cur"))
  elif ((cword == 1)); then
    COMPREPLY=($(compgen -W 'read flows objects stats campaign extcap help completion' -- "$cur"))
    COMPREPLY+=($(compgen -c -- "$cur"))
  else
    COMPREPLY=($(compgen -c -- "$cur"))
  fi
}
complete -F _tracedump tracedump
