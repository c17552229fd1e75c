"""A real HTTP/1.1 peer (standard library only) for tests/http.rs and tests/tls.rs.

Usage: python3 httpserver.py [CERT KEY]   -- prints "PORT n" once listening.
Paths: /len (content-length body), /chunked (chunked body with a trailer),
/close (no length: the body ends with the connection), /slow (answers after 10 s),
/echo (POST: echoes the body and the content-type), /big (2 MB body).
"""
import http.server
import socketserver
import ssl
import sys
import time


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_body(self, body, ctype=b"text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype.decode())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/len":
            self.send_body(b"hello from python")
        elif self.path == "/big":
            self.send_body(b"b" * 2_000_000)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"alpha-", b"beta-", b"gamma"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until-eof")
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(10)
            self.send_body(b"late")
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send_body(self.headers.get("Content-Type", "").encode() + b"|" + body)


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that give up (the timeout tests) are expected


srv = S(("127.0.0.1", 0), H)
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("PORT", srv.server_address[1], flush=True)
srv.serve_forever()
