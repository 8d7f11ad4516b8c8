# Shared helpers for scripts/run-hotline and scripts/test (sourced, not executed).
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.voicebot-install"
LLAMA_STAMP="$VENV/.llama-build"  # the requirement and flags llama-cpp-python was built with

# llama.cpp (extra local-llm) builds from source. The default build tunes for the build machine (-march=native):
# on some virtual machines that binary dies with "invalid opcode" on the first completion (issue 7). GGML_NATIVE=OFF
# builds for x86-64-v3 (AVX2, FMA, F16C, BMI2), which every x86 server CPU since 2015 has; decision 0110 has the
# measurements. Set LLAMA_CMAKE_ARGS to build otherwise (for example "-DGGML_NATIVE=ON" on a known machine).
LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A Python >= 3.11: $PYTHON if set, else the newest python3.x on PATH.
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "Python 3.11 or newer is needed (found: $(python3 --version 2>&1 || echo none)); install python3.11 and python3.11-venv, or set PYTHON=/path/to/python3.11"
}

# Creates .venv if missing or broken, then installs the project with the given extras (comma separated).
# Skips pip when pyproject.toml and the extras are unchanged since the last successful install.
ensure_venv() {
    local extras="$1" python wanted have_hash have_extras extra
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        python="$(find_python)"
        say "creating .venv with $python"
        rm -rf "$VENV"
        "$python" -m venv "$VENV" || die "could not create .venv; on Debian/Ubuntu install python3-venv (apt-get install python3.11-venv)"
    fi
    wanted="$( (cat "$REPO_ROOT/pyproject.toml"; "$VENV/bin/python" -V) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$STAMP" ]]; then
        read -r have_hash have_extras < "$STAMP" || true
        if [[ "$have_hash" == "$wanted" ]]; then
            local missing=0
            IFS=',' read -ra want_list <<< "$extras"
            for extra in "${want_list[@]}"; do
                [[ ",$have_extras," == *",$extra,"* ]] || missing=1
            done
            if [[ $missing -eq 0 && -x "$VENV/bin/voicebot" ]] && llama_cpp_current "$have_extras"; then
                say ".venv is up to date (extras: $have_extras)"
                return 0
            fi
            # Keep what was installed before: install the union of the extras.
            extras="$(printf '%s,%s' "$have_extras" "$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
        fi
    fi
    say "installing voicebot[$extras] into .venv (first time: several minutes; llama-cpp-python builds from source)"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    if [[ ",$extras," == *",local-llm,"* ]]; then
        install_llama_cpp
    fi
    (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install --quiet -e ".[$extras]") \
        || die "pip install of voicebot[$extras] failed (see the output above)"
    printf '%s %s\n' "$wanted" "$extras" > "$STAMP"
}

llama_requirement() {
    "$VENV/bin/python" - "$REPO_ROOT/pyproject.toml" <<'PY'
import sys, tomllib
extras = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["local-llm"]
print(next(r for r in extras if r.startswith("llama-cpp-python")))
PY
}

# True when the extras need no llama.cpp, or it was built for the pinned requirement with today's flags.
llama_cpp_current() {
    [[ ",$1," == *",local-llm,"* ]] || return 0
    [[ -f "$LLAMA_STAMP" && "$(cat "$LLAMA_STAMP")" == "$(llama_requirement) $LLAMA_CMAKE_ARGS" ]] \
        && "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null
}

# Builds llama-cpp-python (the version pinned in pyproject.toml) with LLAMA_CMAKE_ARGS, unless that exact build is
# installed already (a change elsewhere in pyproject.toml must not cost a 5-minute rebuild). --no-cache-dir: pip's
# wheel cache is keyed by version only, so it would hand back a wheel built earlier with other (native) flags.
install_llama_cpp() {
    local requirement
    llama_cpp_current "local-llm" && { say "llama-cpp-python is built already ($(cat "$LLAMA_STAMP"))"; return 0; }
    requirement="$(llama_requirement)" || die "could not read the llama-cpp-python requirement from pyproject.toml"
    say "building $requirement from source with CMAKE_ARGS=$LLAMA_CMAKE_ARGS (≈ 5 min on 2 cores)"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/python" -m pip install --quiet --no-cache-dir --force-reinstall \
        --no-deps "$requirement" || die "building $requirement failed (see the output above)"
    printf '%s %s\n' "$requirement" "$LLAMA_CMAKE_ARGS" > "$LLAMA_STAMP"
}

setup_models() {
    say "assembling the embedded models (voicebot models setup)"
    "$VENV/bin/voicebot" models setup
}
