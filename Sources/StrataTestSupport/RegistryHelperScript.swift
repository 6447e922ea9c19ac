// The Python half of the registry test servers: the counting, fault-injecting proxy, the JWT
// token server, a supervisor that stops docker-registry when the test process dies, and small
// tools (a free port, waiting for a URL). Kept as a Swift string so no fixture file is needed;
// `RegistryHelperScript.install(in:)` writes it out. Its docstrings document every option.
import StrataSystem

public enum RegistryHelperScript {
    /// Writes the script into `directory` (once) and returns its path.
    @discardableResult
    public static func install(in directory: String) throws -> String {
        let path = directory + "/strata-registry-helper.py"
        if !FileIO.exists(path) { try FileIO.writeAtomically(path, Array(source.utf8), mode: 0o755, durable: false) }
        return path
    }

    /// Debian's python3 (scripts/deps), not a user's pyenv shim.
    public static var python: String { Mounts.tool("python3") }

    public static let source = #"""
#!/usr/bin/env python3
"""Strata's registry test helper (written by StrataTestSupport; stdlib only, loopback only).

  helper.py freeport                          print a free TCP port on 127.0.0.1
  helper.py wait URL SECONDS                  wait until URL answers any HTTP status
  helper.py supervise PARENT_PID -- CMD...    run CMD; kill it when we get SIGTERM or PARENT_PID dies
  helper.py proxy OPTIONS                     fault-injecting counting proxy (see Proxy below)
  helper.py token OPTIONS                     JWT (RS256) token server for the registry's auth.token

Every server exits by itself when its parent process (the test) is gone.
"""
import base64, http.client, http.server, json, os, signal, socket, socketserver, subprocess
import sys, threading, time, urllib.parse


def watch_parent(parent, on_exit):
    def loop():
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                on_exit()
                os._exit(0)
    threading.Thread(target=loop, daemon=True).start()


def write_json(path, value):
    tmp = path + ".tmp%d" % threading.get_ident()
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# ---------------------------------------------------------------- proxy
#
# Forwards every request to the registry (keeping the Host header, so the registry's absolute
# Location URLs point back at the proxy) and counts what it serves into --stats (JSON, rewritten
# after each request): requests, bytes (response bodies sent), blobRequests, blobBytes,
# rangeRequests, manifestRequests, redirectRequests and redirectAuthorization (requests that
# reached the redirect target, and how many of those carried Authorization), inFlight (requests
# being answered: counts are final when it is 0), log (one line per request:
# "METHOD PATH RANGE -> STATUS BYTES").
#
# Faults come from --control (JSON, re-read on every request):
#   {"id": N, "mode": MODE, "match": "/blobs/", "count": K, "delay": 0.2}
# The fault applies to the next K requests (-1: all) whose path contains `match` (default
# "/blobs/"); a new `id` starts a new count. Modes:
#   pass          forward unchanged
#   ignore-range  drop the Range header (the registry answers 200 with the whole blob)
#   wrong-length  announce 16 bytes more than the body, send the body, close
#   short-length  announce and send one byte less than the body
#   truncate      announce the right length, send half, close
#   wrong-range   a 206's Content-Range shifted by one byte (same length, same bytes)
#   corrupt       flip the last byte of the body
#   slow          headers at once, then the body one byte every `delay` seconds (slow loris)
#   error         answer 503 without forwarding
#   rate-limit    answer 429 (Retry-After: 0) without forwarding
#   forbidden     answer 403 (DENIED) without forwarding
#   redirect      answer GET/HEAD of a blob with 307 to the redirect target (another host:
#                 --redirect-host, --redirect-port), which serves the blob from the registry's
#                 storage directory (single ranges honoured) and records Authorization
#   down          close the connection without an answer
#   stall         read the request, answer nothing for `delay` seconds, then close
#   hold          forward unchanged once a request whose log line contains `until` has been
#                 answered (or `delay` seconds have passed): shows that a client asks the
#                 other request without waiting for this one's answer
# `match` is looked for in "PATH RANGE" (RANGE: the Range header, "-" without one).

class Proxy:
    def __init__(self, opts):
        self.upstream = opts["upstream"]
        self.control_path = opts["control"]
        self.stats_path = opts["stats"]
        self.storage = opts.get("storage", "")
        self.redirect = "%s:%s" % (opts.get("redirect-host", "127.0.0.2"), opts.get("redirect-port", "0"))
        self.lock = threading.Lock()
        self.used = {}
        self.stats = {"requests": 0, "bytes": 0, "blobRequests": 0, "blobBytes": 0, "rangeRequests": 0,
                      "manifestRequests": 0, "redirectRequests": 0, "redirectAuthorization": 0,
                      "faults": 0, "inFlight": 0, "log": []}
        self.save()

    def save(self):
        write_json(self.stats_path, self.stats)

    def begin(self):
        with self.lock:
            self.stats["inFlight"] += 1
            self.save()

    def end(self):
        with self.lock:
            self.stats["inFlight"] -= 1
            self.save()

    def fault(self, path, rng):
        try:
            with open(self.control_path) as f:
                c = json.load(f)
        except (OSError, ValueError):
            return None
        mode = c.get("mode", "pass")
        if mode == "pass" or c.get("match", "/blobs/") not in "%s %s" % (path, rng or "-"):
            return None
        with self.lock:
            key = c.get("id", 0)
            used = self.used.get(key, 0)
            count = c.get("count", -1)
            if count >= 0 and used >= count:
                return None
            self.used[key] = used + 1
            self.stats["faults"] += 1
        return c

    def hold(self, until, seconds):
        end = time.time() + seconds
        while time.time() < end:
            with self.lock:
                if any(until in line for line in self.stats["log"]):
                    return
            time.sleep(0.01)

    def record(self, method, path, rng, status, sent, redirect_target=False, auth=False):
        with self.lock:
            s = self.stats
            if redirect_target:
                s["redirectRequests"] += 1
                if auth:
                    s["redirectAuthorization"] += 1
            s["requests"] += 1
            s["bytes"] += sent
            if "/blobs/" in path and method in ("GET", "HEAD"):
                s["blobRequests"] += 1
                s["blobBytes"] += sent
            if rng:
                s["rangeRequests"] += 1
            if "/manifests/" in path:
                s["manifestRequests"] += 1
            if len(s["log"]) < 20000:
                s["log"].append("%s %s %s -> %d %d" % (method, path, rng or "-", status, sent))
            self.save()


def proxy_handler(proxy):
    hop = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te",
           "trailer", "upgrade"}

    class H(Quiet):
        def do_any(self):
            proxy.begin()
            try:
                self.forward()
            finally:
                proxy.end()

        def forward(self):
            body = self.read_body()
            path = self.path
            rng = self.headers.get("Range")
            c = proxy.fault(path, rng) or {}
            mode = c.get("mode", "pass")
            if mode == "hold":
                proxy.hold(c.get("until", ""), float(c.get("delay", 60)))
                mode = "pass"
            if mode == "down":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                proxy.record(self.command, path, rng, 0, 0)
                return
            if mode == "stall":
                time.sleep(float(c.get("delay", 60)))
                self.close_connection = True
                proxy.record(self.command, path, rng, 0, 0)
                return
            if mode == "error":
                msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]}'
                self.answer(503, [("Content-Type", "application/json")], msg)
                proxy.record(self.command, path, rng, 503, len(msg))
                return
            if mode in ("rate-limit", "forbidden"):
                status = 429 if mode == "rate-limit" else 403
                code = b"TOOMANYREQUESTS" if status == 429 else b"DENIED"
                msg = b'{"errors":[{"code":"' + code + b'","message":"injected by the test proxy"}]}'
                extra = [("Retry-After", "0")] if status == 429 else []
                self.answer(status, [("Content-Type", "application/json")] + extra, msg)
                proxy.record(self.command, path, rng, status, len(msg))
                return
            if mode == "redirect" and self.command in ("GET", "HEAD") and "/blobs/sha256:" in path:
                hexd = path.split("/blobs/sha256:", 1)[1].split("?")[0]
                loc = "http://%s/blobs/sha256/%s?signature=test" % (proxy.redirect, hexd)
                self.answer(307, [("Location", loc)])
                proxy.record(self.command, path, rng, 307, 0)
                return
            # A header sent several times (podman's Accept, one line per media type) goes on whole.
            headers = {}
            for k, v in self.headers.items():
                if k.lower() not in hop:
                    headers[k] = headers[k] + ", " + v if k in headers else v
            if mode == "ignore-range":
                headers = {k: v for k, v in headers.items() if k.lower() not in ("range", "if-range")}
            if body or self.command in ("PUT", "POST", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
            try:
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read() if self.command != "HEAD" else b""
                length = int(resp.getheader("Content-Length") or len(data))
                status = resp.status
                out = [(k, v) for k, v in resp.getheaders() if k.lower() not in hop]
            finally:
                conn.close()
            if mode == "wrong-range" and status == 206:
                fixed = []
                for k, v in out:
                    if k.lower() == "content-range":
                        spec, total = v.split(" ", 1)[1].split("/")
                        a, b = [int(x) for x in spec.split("-")]
                        v = "bytes %d-%d/%s" % (a + 1, b + 1, total)
                    fixed.append((k, v))
                out = fixed
            if mode == "corrupt" and data:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            declared = length if self.command == "HEAD" else len(data)
            send = data
            close = False
            if mode == "wrong-length" and data:
                declared, close = len(data) + 16, True
            elif mode == "short-length" and data:
                declared, send = len(data) - 1, data[:-1]
            elif mode == "truncate" and data:
                send, close = data[:len(data) // 2], True
            self.send_response(status)
            for k, v in out:
                self.send_header(k, v)
            self.send_header("Content-Length", str(declared))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            sent = 0
            try:
                if mode == "slow" and send:
                    self.wfile.flush()
                    for i in range(len(send)):
                        self.wfile.write(send[i:i + 1])
                        self.wfile.flush()
                        sent += 1
                        time.sleep(float(c.get("delay", 0.2)))
                elif send:
                    self.wfile.write(send)
                    sent = len(send)
                self.wfile.flush()
            except OSError:
                self.close_connection = True
            proxy.record(self.command, path, rng, status, sent)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_any
    return H


def redirect_handler(proxy):
    class H(Quiet):
        def do_any(self):
            proxy.begin()
            try:
                self.serve_blob()
            finally:
                proxy.end()

        def serve_blob(self):
            auth = "Authorization" in self.headers
            rng = self.headers.get("Range")
            parts = self.path.split("?")[0].split("/")
            status, body, headers = 404, b"no such blob\n", []
            if len(parts) == 4 and parts[1] == "blobs" and parts[2] == "sha256" and len(parts[3]) == 64:
                hexd = parts[3]
                blob = os.path.join(proxy.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
                try:
                    with open(blob, "rb") as f:
                        data = f.read()
                    status, body = 200, data
                    if rng and rng.startswith("bytes=") and "," not in rng:
                        a, b = rng[6:].split("-")
                        a = int(a) if a else max(0, len(data) - int(b))
                        b = min(int(b), len(data) - 1) if b and rng[6:][0] != "-" else len(data) - 1
                        if a < len(data):
                            status, body = 206, data[a:b + 1]
                            headers.append(("Content-Range", "bytes %d-%d/%d" % (a, b, len(data))))
                        else:
                            status, body = 416, b""
                            headers.append(("Content-Range", "bytes */%d" % len(data)))
                    headers.append(("Content-Type", "application/octet-stream"))
                except OSError:
                    pass
            self.answer(status, headers, body)
            proxy.record(self.command, self.path, rng, status, len(body) if self.command != "HEAD" else 0,
                         redirect_target=True, auth=auth)

        do_GET = do_HEAD = do_any
    return H


# ---------------------------------------------------------------- token server
#
# GET /token?service=S&scope=repository:NAME:ACTIONS (scope may repeat) answers
# {"token", "access_token", "expires_in", "issued_at"}: a JWT signed RS256 with --key, its
# certificate (--cert) in the header's x5c, granting the actions asked for. With --user and
# --password, Basic credentials are required (401 otherwise); with --anonymous too, requests
# without credentials get a token as well. --stats counts tokens issued and refusals.

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_handler(opts):
    with open(opts["cert"]) as f:
        pem = f.read()
    der_b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
    stats = {"tokens": 0, "refused": 0, "scopes": []}
    lock = threading.Lock()
    write_json(opts["stats"], stats)

    class H(Quiet):
        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            auth = self.headers.get("Authorization", "")
            user = None
            if auth.startswith("Basic "):
                try:
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                except Exception:
                    u, p = "", None
                if u == opts.get("user") and p == opts.get("password"):
                    user = u
                else:
                    user = False
            if user is False or (user is None and "anonymous" not in opts and "user" in opts):
                with lock:
                    stats["refused"] += 1
                    write_json(opts["stats"], stats)
                self.answer(401, [("Content-Type", "application/json")], b'{"details":"wrong credentials"}')
                return
            access = []
            for scope in q.get("scope", []):
                for item in scope.split(" "):
                    kind, _, rest = item.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if kind and name:
                        access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            life = int(opts.get("expires", "300"))
            header = {"typ": "JWT", "alg": "RS256", "x5c": [der_b64]}
            claims = {"iss": opts["issuer"], "sub": user or "", "aud": q.get("service", [""])[0],
                      "exp": now + life, "nbf": now - 10, "iat": now, "jti": "%d-%d" % (now, stats["tokens"]),
                      "access": access}
            signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", opts["key"]], input=signing.encode(),
                                 capture_output=True, check=True).stdout
            token = signing + "." + b64url(sig)
            body = json.dumps({"token": token, "access_token": token, "expires_in": life,
                               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}).encode()
            with lock:
                stats["tokens"] += 1
                stats["scopes"].extend(q.get("scope", []))
                write_json(opts["stats"], stats)
            self.answer(200, [("Content-Type", "application/json")], body)
    return H


# ---------------------------------------------------------------- main

def options(argv):
    opts = {}
    i = 0
    while i < len(argv):
        key = argv[i].lstrip("-")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[key] = argv[i + 1]
            i += 2
        else:
            opts[key] = "1"
            i += 1
    return opts


def serve(host, port, handler, parent):
    server = Server((host, int(port)), handler)
    # Port 0 binds a free one; the test learns which from this line in the log.
    print("listening on %s:%d" % (host, server.server_address[1]), file=sys.stderr, flush=True)
    watch_parent(parent, lambda: None)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    return server


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    cmd = sys.argv[1]
    if cmd == "freeport":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        return
    if cmd == "wait":
        # wait URL LIMIT [PID]: until URL answers; gives up at once if the server PID exited
        # (a zombie counts as exited: its parent has not reaped it yet).
        url, limit = urllib.parse.urlparse(sys.argv[2]), float(sys.argv[3])
        pid = int(sys.argv[4]) if len(sys.argv) > 4 else None
        deadline = time.time() + limit
        while True:
            try:
                c = http.client.HTTPConnection(url.hostname, url.port, timeout=2)
                c.request("GET", url.path or "/")
                c.getresponse().read()
                return
            except OSError:
                if pid is not None and not alive(pid):
                    sys.exit("%s: the server exited" % sys.argv[2])
                if time.time() > deadline:
                    sys.exit("%s did not answer within %s s" % (sys.argv[2], sys.argv[3]))
                time.sleep(0.05)
    if cmd == "supervise":
        parent = int(sys.argv[2])
        child = subprocess.Popen(sys.argv[4:])
        def stop(*a):
            # The main thread is in child.wait(): it returns once the child is gone.
            child.terminate()
            threading.Timer(5, child.kill).start()
        signal.signal(signal.SIGTERM, stop)
        watch_parent(parent, stop)
        child.wait()
        os._exit(0)
    opts = options(sys.argv[2:])
    parent = int(opts["parent"])
    if cmd == "proxy":
        proxy = Proxy(opts)
        if opts.get("redirect-port"):
            r = serve(opts.get("redirect-host", "127.0.0.2"), opts["redirect-port"], redirect_handler(proxy), parent)
            proxy.redirect = "%s:%d" % r.server_address[:2]
            threading.Thread(target=r.serve_forever, daemon=True).start()
        serve("127.0.0.1", opts["port"], proxy_handler(proxy), parent).serve_forever()
    elif cmd == "token":
        serve("127.0.0.1", opts["port"], token_handler(opts), parent).serve_forever()
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
"""#
}
