# Shared set-up steps of scripts/test.sh and scripts/quickstart.sh (sourced, not run).

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# rabbitmq-server and logrotate for the real-component tests, docker-compose to validate the
# compose file, python3-venv for the virtualenv.
ensure_apt_packages() {
  local need=()
  [ -x /usr/sbin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
  [ -x /usr/sbin/logrotate ] || command -v logrotate >/dev/null || need+=(logrotate)
  # Parses docker-compose.elk.yml in the tests (no Docker engine needed).
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v curl >/dev/null || need+=(curl)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv python3-pip)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== apt-get install ${need[*]}"
    as_root apt-get update -qq
    # policy-rc.d or no systemd: the package may fail to start the service; we start it ourselves.
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# A project virtualenv in .venv with the package installed editable, plus the given extras.
ensure_venv() {
  local spec="$1"
  if [ ! -x .venv/bin/python ]; then
    echo "== python3 -m venv .venv"
    python3 -m venv .venv
  fi
  echo "== pip install -e '$spec'"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
}

ensure_rabbitmq() {
  if .venv/bin/python - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5672)) == 0 else 1)
PY
  then return 0; fi
  echo "== rabbitmq-server -detached"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    if .venv/bin/python -c 'import socket; s=socket.socket(); s.settimeout(1); exit(s.connect_ex(("127.0.0.1", 5672)))'; then
      return 0
    fi
    sleep 0.5
  done
  echo "RabbitMQ did not start (port 5672 closed)" >&2
  return 1
}
