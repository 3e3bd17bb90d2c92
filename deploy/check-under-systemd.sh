#!/bin/bash
# Run deploy/allmende.service under a real systemd (as PID 1 of private PID and mount
# namespaces) on a machine whose init is not systemd, and check what the unit promises:
# it starts, stops on SIGTERM, is restarted after a crash, and is NOT restarted when the
# port is taken (exit 69) or the database is damaged (exit 65).
#
# Needs root, systemd (tested with 252, Debian 12), util-linux (unshare, nsenter,
# setpriv), and Python in PYTHON_HOME. Usage: sudo deploy/check-under-systemd.sh
#
# Everything systemd could touch is a private tmpfs inside the namespace (/tmp,
# /var/tmp, /var/log, /var/lib, /run, /opt, /etc/systemd/system) and every unit but
# journald is masked: systemd-tmpfiles empties /tmp at boot and udev renames network
# interfaces, which on a shared machine hit everyone's files and the host's eth0.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PYTHON_HOME=${PYTHON_HOME:-$(python3 -c 'import sys; print(sys.base_prefix)')}
PYVER=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
WORK=$(mktemp -d /root/allmende-systemd-check.XXXXXX)
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cp /etc/passwd /etc/group "$WORK/"
echo 'allmende:x:990:990:Allmende:/var/lib/allmende:/usr/sbin/nologin' >> "$WORK/passwd"
echo 'allmende:x:990:' >> "$WORK/group"

cat > "$WORK/inner.sh" <<INNER
#!/bin/bash
set -e
mount --make-rprivate /
for d in /tmp /var/tmp /var/log /var/lib /run /opt /etc/systemd/system; do mount -t tmpfs tmpfs "\$d"; done
mount --bind $WORK/passwd /etc/passwd
mount --bind $WORK/group /etc/group
mkdir -p /opt/allmende/py /opt/allmende/venv/bin /opt/allmende/src /var/log/journal
mount --bind $PYTHON_HOME /opt/allmende/py
mount --bind $SRC /opt/allmende/src
# The program as installed in /opt (ProtectHome=yes hides a Python under /root).
printf '#!/bin/sh\nLD_LIBRARY_PATH=/opt/allmende/py/lib PYTHONPATH=/opt/allmende/src exec /opt/allmende/py/bin/python$PYVER -c "from cli.main import main; main()" "\$@"\n' > /opt/allmende/venv/bin/allmende
chmod 755 /opt/allmende/venv/bin/allmende
cp /opt/allmende/src/deploy/allmende.service /etc/systemd/system/
printf '[Unit]\nDescription=only the allmende node\nWants=allmende.service\n' > /etc/systemd/system/allmende-test.target
for w in sysinit sockets timers local-fs paths; do
  for u in \$(ls /lib/systemd/system/\$w.target.wants 2>/dev/null); do
    case "\$u" in systemd-journald.service|systemd-journald.socket|systemd-journald-dev-log.socket) ;;
      *) ln -sf /dev/null /etc/systemd/system/\$u;; esac
  done
done
for u in systemd-remount-fs.service tmp.mount ldconfig.service systemd-hwdb-update.service \
  systemd-journal-catalog-update.service systemd-update-done.service systemd-fsck-root.service \
  systemd-pstore.service systemd-timesyncd.service systemd-network-generator.service \
  systemd-tmpfiles-setup-dev-early.service swap.target cryptsetup.target; do
  ln -sf /dev/null /etc/systemd/system/\$u
done
install -d -o allmende -g allmende -m 0700 /var/lib/allmende
setpriv --reuid=990 --regid=990 --clear-groups env ALLMENDE_DATA_DIR=/var/lib/allmende \
  /opt/allmende/venv/bin/allmende init --name Check --scope eu/de/berlin/check --no-mdns --port $PORT
sed -i "s|/ip4/0.0.0.0/tcp/$PORT|/ip4/127.0.0.1/tcp/$PORT|" /var/lib/allmende/config.toml
exec /lib/systemd/systemd --system --unit=allmende-test.target --log-target=console
INNER
chmod +x "$WORK/inner.sh"

setsid unshare --pid --fork --mount --uts --ipc --mount-proc "$WORK/inner.sh" > "$WORK/systemd.log" 2>&1 < /dev/null &
UNSHARE=$!
sleep 3
PID1=$(pgrep -P "$UNSHARE")
ns() { nsenter -t "$PID1" -m -p "$@"; }
show() { ns systemctl show allmende -p ActiveState -p ExecMainStatus -p NRestarts | sort | tr '\n' ' '; echo; }
fail=0
expect() { # expect WHAT STATE STATUS RESTARTS
  local got; got=$(show)
  if [[ "$got" == *"ActiveState=$2"*"ExecMainStatus=$3"*"NRestarts=$4"* ]]; then echo "ok   $1: $got"
  else echo "FAIL $1: $got"; fail=1; fi
}
trap 'kill -9 "$PID1" 2>/dev/null || true' EXIT

sleep 10; expect "starts" active 0 0
ns systemctl stop allmende; expect "SIGTERM stops it cleanly" inactive 0 0
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$PORT)); s.listen(); time.sleep(40)" &
HOLDER=$!; sleep 1
ns systemctl start allmende || true; sleep 25; expect "port taken: no restart" failed 69 0
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true
ns journalctl -u allmende -n 1 -o cat
ns sh -c 'head -c 8192 /dev/urandom > /var/lib/allmende/allmende.db; rm -f /var/lib/allmende/allmende.db-wal /var/lib/allmende/allmende.db-shm'
ns systemctl reset-failed allmende; ns systemctl start allmende || true; sleep 20
expect "damaged database: no restart" failed 65 0
ns journalctl -u allmende -n 1 -o cat
ns mv /var/lib/allmende/allmende.db /var/lib/allmende/allmende.db.damaged
ns systemctl reset-failed allmende; ns systemctl start allmende; sleep 8
ns systemctl kill -s SIGKILL allmende; sleep 12; expect "a crash is restarted" active 0 1
exit $fail
