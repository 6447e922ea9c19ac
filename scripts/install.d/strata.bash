# bash completion for strata. Options are read from `strata COMMAND --help`, so they are
# always the installed binary's own.
_strata() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local commands="mount unmount index inspect bundle commit snapshot gc store status version help"
    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    local command=${COMP_WORDS[1]}
    if [[ "$command" == snapshot && COMP_CWORD -eq 2 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "prepare view commit remove stat list usage mounts unmount import check" -- "$cur"))
        return
    fi
    if [[ "$cur" == -* ]]; then
        local options
        options=$("${COMP_WORDS[0]}" "$command" --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)
        COMPREPLY=($(compgen -W "$options --help" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _strata strata
