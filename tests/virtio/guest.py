#!/usr/bin/env python3
"""Host side of the guest agent in vsock-tool.c, plus small socket helpers
for tests/virtio/virtio-test.sh.

  guest.py run vsock:UDS:PORT [--timeout S] -- CMD    run CMD in the guest
  guest.py run tty:SOCK [--timeout S] -- CMD          (agent on a tty chardev)
      prints the command's output, exits with its status (124 on timeout,
      125 if the agent could not be reached)
  guest.py wait vsock:UDS:PORT --timeout S
      retries `true` until the agent answers
  guest.py connect UDS PORT LINE          Firecracker-style host -> guest:
      CONNECT PORT, print the "OK <n>" answer, send LINE, print the reply line
  guest.py echo UDS PORT NBYTES           host -> guest bulk echo: send NBYTES
      random bytes, half-close, read everything back; prints
      "sent <sha256> <n>" and "got <sha256> <n>"
  guest.py serve-line PATH                listen on Unix socket PATH, answer one
      connection's first line with "echo: <line>" (guest -> host)
  guest.py console PATH LINE              connect to a virtio-console socket,
      print "connected", then the first line the guest writes; answer LINE
  guest.py tcp-recv ADDR PORT             accept one TCP connection, print
      "<md5> <bytes>" of what arrives (and "listening" on stderr first)
  guest.py tcp-send ADDR PORT FILE        connect and send FILE
"""
import base64
import hashlib
import os
import socket
import sys
import threading
import time


def die(msg, code=125):
    print(f"guest.py: {msg}", file=sys.stderr)
    sys.exit(code)


def open_agent(spec, deadline):
    kind, _, rest = spec.partition(":")
    if kind == "vsock":
        uds, _, port = rest.rpartition(":")
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(max(1.0, deadline - time.time()))
        s.connect(uds)
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                raise ConnectionError("the guest refused the vsock connection (agent not listening?)")
            line += b
        if not line.startswith(b"OK "):
            raise ConnectionError(f"unexpected answer {line!r}")
        return s
    if kind == "tty":
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(max(1.0, deadline - time.time()))
        s.connect(rest)
        return s
    die(f"unknown agent address {spec!r} (vsock:UDS:PORT or tty:SOCK)", 2)


def run(spec, cmd, timeout):
    deadline = time.time() + timeout
    try:
        s = open_agent(spec, deadline)
    except (OSError, ConnectionError) as e:
        die(f"cannot reach the agent at {spec}: {e}")
    s.sendall(b"RUN " + base64.b64encode(cmd.encode()) + b"\n")
    buf = b""
    out = sys.stdout.buffer
    while True:
        left = deadline - time.time()
        if left <= 0:
            out.flush()
            die(f"timed out after {timeout}s: {cmd[:60]!r}", 124)
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        if not b:
            out.flush()
            die(f"agent connection closed before EXIT: {cmd[:60]!r}")
        buf += b
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"OUT "):
                out.write(base64.b64decode(line[4:]))
            elif line.startswith(b"EXIT "):
                out.flush()
                s.close()
                return int(line[5:])


def connect_line(uds, port, line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(uds)
    s.sendall(f"CONNECT {port}\n".encode())
    f = s.makefile("rb")
    print(f.readline().decode().strip())
    s.sendall(line.encode() + b"\n")
    print(f.readline().decode().strip())
    sys.stdout.flush()


def echo(uds, port, n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(uds)
    s.sendall(f"CONNECT {port}\n".encode())
    ok = b""
    while not ok.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            die("the guest refused the echo connection", 1)
        ok += b
    data = os.urandom(n)
    got = hashlib.sha256()
    count = [0]

    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                return
            got.update(b)
            count[0] += len(b)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    print(f"sent {hashlib.sha256(data).hexdigest()} {n}")
    print(f"got {got.hexdigest()} {count[0]}")


def serve_line(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    s.settimeout(600)
    c, _ = s.accept()
    c.settimeout(60)
    f = c.makefile("rb")
    line = f.readline()
    c.sendall(b"echo: " + line)
    c.close()
    print(line.decode().strip())


def console(path, answer):
    for _ in range(600):
        if os.path.exists(path):
            break
        time.sleep(0.1)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(path)
    # Output the guest writes while no client is connected is dropped, so
    # the test starts the guest side only after this line.
    print("connected", flush=True)
    f = s.makefile("rb")
    print(f.readline().decode().strip())
    sys.stdout.flush()
    s.sendall(answer.encode() + b"\n")
    time.sleep(1)


def tcp_recv(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    print("listening", file=sys.stderr, flush=True)
    s.settimeout(600)
    c, _ = s.accept()
    c.settimeout(300)
    h = hashlib.md5()
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(f"{h.hexdigest()} {n}")


def tcp_send(addr, port, path):
    s = socket.create_connection((addr, port), timeout=300)
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            s.sendall(b)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def main(argv):
    if len(argv) < 2:
        die(__doc__.strip(), 2)
    cmd = argv[1]
    if cmd in ("run", "wait"):
        spec = argv[2]
        timeout = 60.0
        rest = argv[3:]
        if rest[:1] == ["--timeout"]:
            timeout = float(rest[1])
            rest = rest[2:]
        if cmd == "wait":
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    s = open_agent(spec, time.time() + 5)
                    s.close()
                    return 0
                except (OSError, ConnectionError):
                    time.sleep(0.5)
            die(f"no agent at {spec} within {timeout}s", 1)
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return run(spec, " ".join(rest), timeout)
    if cmd == "connect":
        return connect_line(argv[2], int(argv[3]), argv[4])
    if cmd == "echo":
        return echo(argv[2], int(argv[3]), int(argv[4]))
    if cmd == "serve-line":
        return serve_line(argv[2])
    if cmd == "console":
        return console(argv[2], argv[3])
    if cmd == "tcp-recv":
        return tcp_recv(argv[2], int(argv[3]))
    if cmd == "tcp-send":
        return tcp_send(argv[2], int(argv[3]), argv[4])
    die(f"unknown subcommand {cmd!r}", 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
