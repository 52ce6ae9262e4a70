# bash completion for smelt and smelt-rt.
#
# The commands and each command's options are read from the program's own
# --help, so they follow the installed version; files are completed by the
# extensions a command reads (.smelt, .ingot, .onnx), folders always.

_smelt_commands() {
  "$1" --help 2>/dev/null | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'
}

_smelt_options() {
  "$1" "$2" --help 2>/dev/null | grep -o -- '--[a-z0-9-]*=\{0,1\}' | sort -u
}

# Files with one of the extensions in $2 (a glob alternation), and folders.
_smelt_files() {
  local cur=$1 pattern=$2 f
  compopt -o filenames 2>/dev/null
  while IFS= read -r f; do
    if [[ -d $f ]]; then COMPREPLY+=("$f/"); compopt -o nospace 2>/dev/null
    elif [[ $f == @($pattern) ]]; then COMPREPLY+=("$f"); fi
  done < <(compgen -f -- "$cur")
}

# The values of the options that take one of a few words, or a file.
_smelt_values() {
  local opt=$1 val=$2
  case $opt in
    --stage) compgen -W "ast graph grad simplified fused plan llvm ptx amdgcn asm" -- "$val" ;;
    --fusion) compgen -W "none pointwise all" -- "$val" ;;
    --precision) compgen -W "fp32 tf32 bf16 fp16" -- "$val" ;;
    --color) compgen -W "auto always never" -- "$val" ;;
    --device) compgen -W "auto cpu cuda hip" -- "$val" ;;
    --split) compgen -W "test val train" -- "$val" ;;
    --entry) compgen -W "train_step infer eval" -- "$val" ;;
    --output|--svg|--checkpoint|--weights|--inputs|--outputs) compgen -f -- "$val" ;;
  esac
}

_smelt() {
  local prog=$1 cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} != -* && ${COMP_WORDS[i]} != = ]]; then cmd=${COMP_WORDS[i]}; break; fi
  done
  if [[ -z $cmd ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_smelt_commands "$prog") --help --version" -- "$cur")
    return
  fi
  # --name=VALUE, read from the line itself: bash splits words at '=' when
  # COMP_WORDBREAKS holds it (the default) and then replaces only the value.
  local line=${COMP_LINE:0:COMP_POINT}
  local word=${line##*[[:space:]]}
  if [[ $word == --*=* ]]; then
    local opt=${word%%=*} val=${word#*=} v
    while IFS= read -r v; do
      [[ -n $v ]] || continue
      if [[ $COMP_WORDBREAKS == *=* ]]; then COMPREPLY+=("$v"); else COMPREPLY+=("$opt=$v"); fi
    done < <(_smelt_values "$opt" "$val")
    return
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_smelt_options "$prog" "$cmd") --help" -- "$cur")
    [[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    return
  fi
  if [[ $prev == -o ]]; then _smelt_files "$cur" '*'; return; fi
  case $prog:$cmd in
    *smelt-rt:*|*:inspect) _smelt_files "$cur" '*.ingot' ;;
    *:import) _smelt_files "$cur" '*.onnx' ;;
    *:check|*:build|*:dump|*:graph|*:explain|*:init) _smelt_files "$cur" '*.smelt|*.onnx' ;;
    *) _smelt_files "$cur" '*.smelt|*.ingot|*.onnx' ;;
  esac
}

complete -F _smelt smelt smelt-rt
