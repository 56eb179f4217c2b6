#!/usr/bin/env bash
# Set up MuSc Inspector in ./.venv (idempotent, quick when already done) and run one job:
#   bash bootstrap.sh demo   -> open the desktop app on the bundled synthetic line (headless: CLI)
#   bash bootstrap.sh test   -> run the test suite
set -euo pipefail
cd "$(dirname "$0")"

TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
# Debian packages the wheels need at run time: open3d (libusb), Qt on X11 and the OpenGL 3D view
# (mesa, xcb plugins); and for the tests a virtual screen (xvfb) and pdftotext (poppler-utils),
# which reads the text back out of the exported PDF report. Under CI=true a test whose tool is
# missing fails instead of skipping.
APT_PACKAGES=(libusb-1.0-0 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
              libxcb-keysyms1 xvfb poppler-utils)

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_python_packages() {
  # A stamp keyed on the files that define the environment makes a second run instant.
  local stamp
  stamp=".venv/.bootstrap-$(cat pyproject.toml bootstrap.sh | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  [ -x .venv/bin/python ] || python3 -m venv .venv
  echo "bootstrap: installing Python packages into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned, so that the project's ">=" ranges never pull a different build
  .venv/bin/python -m pip install -q "${TORCH_PINS[@]}"
  # the cluster extra (Ray) too, so that the test command also tests musc score --cluster
  .venv/bin/python -m pip install -q -e ".[dev,cluster]"
  rm -f .venv/.bootstrap-*
  touch "$stamp"
}

install_apt_packages
install_python_packages

case "${1:-demo}" in
  demo)
    shift || true
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
      # the desktop app on the bundled synthetic line (RGB + XYZ), scored in the background
      exec .venv/bin/musc-gui --demo out/demo "$@"
    fi
    echo "bootstrap: no display found; scoring the demo with the command line instead" >&2
    exec .venv/bin/musc demo --out out/demo "$@"
    ;;
  test)
    shift || true
    # Qt widgets render offscreen; the OpenGL 3D view tests start their own Xvfb
    export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
    exec .venv/bin/python -m pytest -q -ra "$@"
    ;;
  *)
    echo "usage: bash bootstrap.sh [demo|test] [extra arguments]" >&2
    exit 2
    ;;
esac
