"""A local forwarding proxy for clients that cannot send a bearer token (the MCP conformance
suite has no option for one): every request is passed to the gateway as it came, Host and
Origin included (so the gateway's own checks are what is tested), with
"Authorization: Bearer <token>" added when the request has none. Answers come back whole.

    with mcp_proxy.Proxy(gateway_port, token) as p:
        url = f"http://127.0.0.1:{p.port}/mcp"
"""
import http.client
import http.server
import socket
import threading

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-connection", "content-length"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        up = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=60)
        try:
            up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    up.putheader(k, v)
            if "authorization" not in {k.lower() for k in self.headers.keys()}:
                up.putheader("Authorization", "Bearer " + self.server.token)
            if body is not None:
                up.putheader("Content-Length", str(len(body)))
            up.endheaders(body)
            r = up.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            up.close()

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _forward

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up (the suite closes connections as it likes)


class Proxy:
    def __init__(self, target_port, token):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.target_port = target_port
        self.server.token = token
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
