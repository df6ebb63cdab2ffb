# bash completion for passguard(1)                        -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Verbs, their options, the global options before the verb (--json, --socket
# PATH), `policy check|explain|edit|generate`, and, when the daemon answers, its BDFs
# and domain names: `passguard --json list` (with the --socket typed on the
# line, if any; at most 2 seconds) gives the assignable devices (assign,
# explain, unprepare; assign and explain take several, each offered once),
# the granted ones and their domains (release), both (owner, untaint).
# prepare offers the host's PCI devices from sysfs. Domain names also
# come from `xl list` where it works. Whatever is not reachable adds nothing,
# silently.
#
# Self-contained: it needs none of bash-completion's helpers, and copes with
# the colons of BDFs, which bash splits words at (COMP_WORDBREAKS).

# Rejoin the words bash split at ':' and '=' ("0000", ":", "03", ":", "00.0";
# "--socket", "=", "/run/x.sock") into _pg_words and _pg_cword; _pg_cur is
# the current word up to the cursor.
_passguard_rejoin()
{
    local i w
    _pg_words=()
    _pg_cword=-1
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if ((i > 0 && ${#_pg_words[@]} > 0)) &&
            [[ $w == [:=] || ${COMP_WORDS[i - 1]} == [:=] ]]; then
            _pg_words[-1]+=$w
        else
            _pg_words+=("$w")
        fi
        ((i == COMP_CWORD)) && _pg_cword=$((${#_pg_words[@]} - 1))
    done
    if ((_pg_cword < 0)); then
        _pg_words+=("")
        _pg_cword=$((${#_pg_words[@]} - 1))
    fi
    _pg_cur=${_pg_words[_pg_cword]}
}

# COMPREPLY from candidates (words in the arguments, separated by blanks or
# newlines) for the whole current word; only the part after its last ':' or
# '=' goes back, since that is the part bash replaces.
_passguard_reply()
{
    local words="$*" c prefix= IFS=$'\n'
    COMPREPLY=($(IFS=$' \t\n' && compgen -W "$words" -- "$_pg_cur"))
    if [[ $_pg_cur == *[:=]* ]]; then
        prefix=${_pg_cur%"${_pg_cur##*[:=]}"}
        for c in "${!COMPREPLY[@]}"; do
            COMPREPLY[c]=${COMPREPLY[c]#"$prefix"}
        done
    fi
}

# Ask the daemon: sets _pg_assignable (BDFs), _pg_granted ("BDF DOMID DOMAIN"
# lines). Returns 1, with both empty, when it does not answer.
_passguard_query()
{
    local json part obj re_dev='"device":"([^"]*)"' re_domid='"domid":([0-9]+)'
    local re_dom='"domain":"([^"]*)"' dev domid dom
    _pg_assignable=()
    _pg_granted=()
    json=$(timeout 2 "$_pg_cmd" "${_pg_global[@]}" --json list 2>/dev/null </dev/null) ||
        return 1
    [[ $json == *'"ok":true'* ]] || return 1
    part=${json#*\"assignable\":[}
    part=${part%%]*}
    while [[ $part =~ \{([^{}]*)\} ]]; do
        obj=${BASH_REMATCH[1]}
        part=${part#*"${BASH_REMATCH[0]}"}
        [[ $obj =~ $re_dev ]] && _pg_assignable+=("${BASH_REMATCH[1]}")
    done
    part=${json#*\"grants\":[}
    part=${part%%]*}
    while [[ $part =~ \{([^{}]*)\} ]]; do
        obj=${BASH_REMATCH[1]}
        part=${part#*"${BASH_REMATCH[0]}"}
        dev= domid= dom=
        [[ $obj =~ $re_dev ]] && dev=${BASH_REMATCH[1]}
        [[ $obj =~ $re_domid ]] && domid=${BASH_REMATCH[1]}
        [[ $obj =~ $re_dom ]] && dom=${BASH_REMATCH[1]}
        [[ $dev ]] && _pg_granted+=("$dev $domid $dom")
    done
    return 0
}

# Domain names (and domids) worth offering: those holding grants, and xl's.
_passguard_domains()
{
    local g names=() name id
    _passguard_query
    for g in "${_pg_granted[@]}"; do
        read -r _ id name <<<"$g"
        [[ $name ]] && names+=("$name")
        [[ $id ]] && names+=("$id")
    done
    if type -P xl >/dev/null 2>&1; then
        while read -r name id _; do
            [[ $id =~ ^[0-9]+$ && $id != 0 ]] && names+=("$name")
        done < <(timeout 2 xl list 2>/dev/null </dev/null)
    fi
    printf '%s\n' "${names[@]}"
}

# BDFs granted to a domain (a name or a domid; any domain when empty).
_passguard_granted_to()
{
    local g dev id name
    _passguard_query
    for g in "${_pg_granted[@]}"; do
        read -r dev id name <<<"$g"
        if [[ -z $1 || $1 == "$id" || $1 == "$name" ]]; then
            printf '%s\n' "$dev"
        fi
    done
}

# File names for the current word (for --socket=PATH, the part after '=').
_passguard_files()
{
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "${1-$_pg_cur}"))
}

_passguard_sysfs_devices()
{
    local d
    for d in /sys/bus/pci/devices/*; do
        [[ -e $d ]] && printf '%s\n' "${d##*/}"
    done
}

_passguard()
{
    local _pg_words _pg_cword _pg_cur _pg_cmd _pg_global=() _pg_assignable _pg_granted
    local i verb= verb_at=0 args=() w prev
    COMPREPLY=()
    _passguard_rejoin
    _pg_cmd=${_pg_words[0]}
    # ~/bin/passguard and the like: expand a leading tilde for the query
    [[ $_pg_cmd == "~"* ]] && _pg_cmd=$HOME${_pg_cmd#"~"}
    type -P "$_pg_cmd" >/dev/null 2>&1 || [[ -x $_pg_cmd ]] || _pg_cmd=passguard

    # global options, then the verb
    for ((i = 1; i < _pg_cword; i++)); do
        w=${_pg_words[i]}
        case $w in
        --socket)
            ((i + 1 < _pg_cword)) && _pg_global+=(--socket "${_pg_words[i + 1]}")
            ((i++))
            ;;
        --socket=*) _pg_global+=("$w") ;;
        -*) ;;
        *)
            verb=$w
            verb_at=$i
            break
            ;;
        esac
    done
    prev=${_pg_words[_pg_cword - 1]}

    if [[ -z $verb ]]; then
        case $prev in
        --socket)
            _passguard_files
            return
            ;;
        esac
        if [[ $_pg_cur == --socket=* ]]; then
            _passguard_files "${_pg_cur#--socket=}"
        elif [[ $_pg_cur == -* ]]; then
            _passguard_reply --json --socket --help --version
        else
            _passguard_reply status list assign release explain owner prepare unprepare \
                untaint reload monitor policy
        fi
        return
    fi

    # the verb's own words before the cursor, options left out
    for ((i = verb_at + 1; i < _pg_cword; i++)); do
        [[ ${_pg_words[i]} == -* ]] || args+=("${_pg_words[i]}")
    done

    case $verb in
    status | list | reload)
        [[ $_pg_cur == -* ]] && _passguard_reply --help
        ;;
    monitor)
        [[ $_pg_cur == -* ]] && _passguard_reply --json --help
        ;;
    assign | explain)
        if [[ $_pg_cur == -* ]]; then
            _passguard_reply --rdm-relaxed --help
        elif ((${#args[@]} == 0)); then
            _passguard_reply "$(_passguard_domains)"
        else
            # every device, all or none: those not named yet
            local dev named=" ${args[*]:1} " left=()
            _passguard_query
            for dev in "${_pg_assignable[@]}"; do
                [[ $named == *" $dev "* ]] || left+=("$dev")
            done
            _passguard_reply "${left[*]}"
        fi
        ;;
    release)
        if [[ $_pg_cur == -* ]]; then
            _passguard_reply --help
        elif ((${#args[@]} == 0)); then
            _passguard_query
            local g dev id name doms=()
            for g in "${_pg_granted[@]}"; do
                read -r dev id name <<<"$g"
                doms+=($name $id)
            done
            _passguard_reply "${doms[*]}"
        elif ((${#args[@]} == 1)); then
            _passguard_reply "$(_passguard_granted_to "${args[0]}")"
        fi
        ;;
    owner | unprepare | untaint)
        if [[ $_pg_cur == -* ]]; then
            _passguard_reply --help
        elif ((${#args[@]} == 0)); then
            _passguard_query
            if [[ $verb != unprepare ]]; then
                _passguard_reply "${_pg_assignable[*]} $(_passguard_granted_to '')"
            else
                _passguard_reply "${_pg_assignable[*]}"
            fi
        fi
        ;;
    prepare)
        if [[ $_pg_cur == -* ]]; then
            _passguard_reply --help
        elif ((${#args[@]} == 0)); then
            _passguard_reply "$(_passguard_sysfs_devices)"
        fi
        ;;
    policy)
        if ((${#args[@]} == 0)); then
            if [[ $_pg_cur == -* ]]; then
                _passguard_reply --help
            else
                _passguard_reply check explain edit generate
            fi
            return
        fi
        case ${args[0]} in
        check)
            if [[ $_pg_cur == -* ]]; then
                _passguard_reply --help
            elif ((${#args[@]} == 1)); then
                _passguard_files
            fi
            ;;
        edit)
            case $prev in
            --file) _passguard_files ;;
            *) [[ $_pg_cur == -* ]] && _passguard_reply --file --help ;;
            esac
            ;;
        generate)
            case $prev in
            --output | --sysfs-root) _passguard_files ;;
            *) [[ $_pg_cur == -* ]] && _passguard_reply --output --sysfs-root --help ;;
            esac
            ;;
        explain)
            case $prev in
            --type) _passguard_reply hvm pvh pv ;;
            --group) _passguard_reply "$(compgen -g)" ;;
            --uid | --gid | --unit | --device | --vendor | --device-id | --subsystem-vendor | \
                --subsystem-device | --class | --domain | --domid | --uuid) ;;
            *)
                if [[ $_pg_cur == -* ]]; then
                    _passguard_reply --uid --gid --group --unit --device --vendor --device-id \
                        --subsystem-vendor --subsystem-device --class --domain --domid --uuid \
                        --type --help
                else
                    _passguard_files
                fi
                ;;
            esac
            ;;
        esac
        ;;
    esac
}

complete -F _passguard passguard
