"""A small hand-written RFC 6455 client (standard library only) for tests/websocket.rs.

Usage: [WSS=1] python3 wsclient.py PORT SCENARIO
Prints one line per observation ("got text ...", "close 1009", "eof", ...), so the
Rust test can assert on the exact sequence a real peer sees.
"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if os.environ.get("WSS"):  # wss: TLS first (the test's self-signed certificate)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def connect(port, extra=b""):
    s = tcp(port)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            raise SystemExit("eof in handshake: %r" % head)
        head += d
    status = head.split(b"\r\n")[0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if b" 101 " not in status:
        print("handshake", status.decode())
        return None
    assert b"Sec-WebSocket-Accept: " + accept in head, head
    return s


def frame(op, payload, fin=True, mask=True, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, m | 126, n)
    else:
        h = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        k = os.urandom(4)
        payload = bytes(c ^ k[i % 4] for i, c in enumerate(payload))
        h += k
    return h + payload


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            return None
        b += d
    return b


def read_frame(s):
    h = recv_exact(s, 2)
    if h is None:
        return None
    b0, b1 = h
    assert b1 & 0x80 == 0, "server frames must not be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return b0 & 0x0F, bool(b0 & 0x80), recv_exact(s, n) if n else b""


def report(s, upto=10):
    """Print frames until EOF (or `upto` frames)."""
    for _ in range(upto):
        try:
            f = read_frame(s)
        except (ConnectionResetError, socket.timeout, ssl.SSLError) as e:
            print("error", type(e).__name__)
            return
        if f is None:
            print("eof")
            return
        op, fin, p = f
        if op == 1:
            print("got text", p.decode())
        elif op == 2:
            print("got binary", len(p))
        elif op == 8:
            code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
            print("close", code)
        elif op == 10:
            print("pong", p.decode())
        else:
            print("op", op)


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    if scenario == "badhandshake":
        s = tcp(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        print("handshake", s.recv(4096).split(b"\r\n")[0].decode())
        return
    if scenario == "silent":  # half a handshake, then nothing: the server cuts us off
        s = tcp(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        print("eof" if s.recv(4096) == b"" else "data")
        return
    s = connect(port)
    if scenario == "echo":
        s.sendall(frame(1, "héllo".encode()))
        report(s, 1)
        s.sendall(frame(2, b"\x00" * 70000))
        report(s, 1)
        s.sendall(frame(1, b"abc", mask=False))  # unmasked: accepted, as upstream
        report(s, 1)
        # fragmented text with a ping between the fragments
        s.sendall(frame(1, b"frag", fin=False) + frame(9, b"p1") + frame(0, b"men", fin=False)
                  + frame(0, b"ted"))
        report(s, 2)
        s.sendall(frame(8, struct.pack("!H", 1000) + b"done"))
        report(s)
    elif scenario == "bigframe":
        s.sendall(frame(2, b"", length=1 << 20))
        report(s)
    elif scenario == "bigmessage":
        for _ in range(3):
            s.sendall(frame(2, b"y" * 40000, fin=False) if _ == 0 else frame(0, b"y" * 40000, fin=False))
        report(s)
    elif scenario == "orphan":
        s.sendall(frame(0, b"x"))
        report(s)
    elif scenario == "interleave":
        s.sendall(frame(1, b"a", fin=False) + frame(1, b"b"))
        report(s)
    elif scenario == "utf8":
        s.sendall(frame(1, b"\xff\xfe"))
        report(s)
    elif scenario == "rsv":
        s.sendall(frame(1, b"x", rsv=0x40))
        report(s)
    elif scenario == "bigcontrol":
        s.sendall(frame(9, b"z" * 126))
        report(s)
    elif scenario == "badclose":
        s.sendall(frame(8, struct.pack("!H", 999)))
        report(s)
    elif scenario == "drop":
        s.close()
        print("dropped")
    else:
        raise SystemExit("unknown scenario " + scenario)


main()
