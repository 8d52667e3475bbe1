# shellcheck shell=bash
# The operator console's browser tests (crates/cli/tests/console.rs): Debian's Chromium and
# ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), driven headless over the W3C
# WebDriver protocol by the test itself. Fast when installed (two dpkg-query calls).
_browser_setup() {
  local p missing=() sudo=""
  for p in chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing Debian packages for the console's browser tests: ${missing[*]}"
    if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440 2>/dev/null)" ]; then
      mkdir -p "$CACHE"
      $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq && touch "$CACHE/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null ||
      { echo "dev/setup: installing ${missing[*]} failed" >&2; return 1; }
  fi
  for p in chromium chromedriver; do
    command -v "$p" >/dev/null || { echo "dev/setup: $p missing after install" >&2; return 1; }
  done
}
_browser_setup
