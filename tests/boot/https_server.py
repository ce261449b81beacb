"""A threaded HTTPS server on 127.0.0.1 for the boot tests (standard library + openssl CLI).

The guest reaches it as https://10.0.2.100/ (QEMU guestfwd, see vm.py); its certificate is
for IP 10.0.2.100 (and 127.0.0.1, localhost), signed by the test CA that build-base-image.sh
trusts inside the images. It serves the files of one directory (GET/HEAD), accepts POST/PUT
(bodies saved under WORKDIR/uploads/), and logs every request as one JSON line
(time, client, method, path, headers, status, body size, saved body file) to
WORKDIR/https-requests.jsonl.

    srv = HttpsServer(directory="work/www", workdir="work/https",
                      ca_cert="work/base/test-ca.pem", ca_key="work/base/test-ca.key").start()
    Vm(image, workdir, https_port=srv.port)
    ...
    srv.requests()   # list of dicts
    srv.stop()

Also runnable by hand: python3 https_server.py --dir D --workdir W --ca-cert C --ca-key K [--port P]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

GUEST_ADDR = "10.0.2.100"


def make_server_cert(workdir: Path, ca_cert, ca_key, ips=(GUEST_ADDR, "127.0.0.1"),
                     names=("localhost",), days: int = 30) -> tuple[Path, Path]:
    """A server key and certificate signed by the test CA; returns (cert, key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = (workdir / n for n in ("server.key", "server.csr", "server.pem", "server.ext"))
    san = ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{n}" for n in names])
    ext.write_text(
        f"subjectAltName={san}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={ips[0]}"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
                    "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "pinode-e2e-https/1"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds of client silence before the connection is dropped

    def __init__(self, *args, directory=None, owner=None, **kwargs):
        self._owner = owner
        self._body_info = {}
        super().__init__(*args, directory=directory, **kwargs)

    def log_message(self, format, *args):  # quiet: requests go to the JSON log
        pass

    def log_request(self, code="-", size="-"):
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = getattr(code, "value", code)
        self._owner._record({
            "time": time.time(),
            "client": self.client_address[0],
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": {k: v for k, v in self.headers.items()},
            "status": code,
            **self._body_info,
        })

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _store(self):
        body = self._read_body()
        name = None
        if body:
            name = self._owner._save_upload(self.command, self.path, body)
        self._body_info = {"body_bytes": len(body), "body_file": name}
        reply = json.dumps({"ok": True, "bytes": len(body)}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_POST(self):
        self._store()

    def do_PUT(self):
        self._store()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpsServer:
    def __init__(self, directory, workdir, ca_cert, ca_key, host: str = "127.0.0.1", port: int = 0,
                 log_name: str = "https-requests.jsonl"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the test HTTPS server binds to loopback only")
        self.directory = Path(directory).resolve()
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca_cert, self.ca_key = Path(ca_cert), Path(ca_key)
        self.host, self._port = host, port
        self.log_path = self.workdir / log_name
        self.upload_dir = self.workdir / "uploads"
        self._lock = threading.Lock()
        self._n = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def guest_url(self) -> str:
        return f"https://{GUEST_ADDR}/"

    def start(self) -> "HttpsServer":
        cert, key = make_server_cert(self.workdir / "tls", self.ca_cert, self.ca_key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        owner, directory = self, str(self.directory)

        def handler(*args, **kwargs):
            return _Handler(*args, directory=directory, owner=owner, **kwargs)

        httpd = _Server((self.host, self._port), handler)
        # the TLS handshake happens in the request's thread, not in the accept loop
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="https-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _record(self, entry: dict) -> None:
        with self._lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")

    def _save_upload(self, method: str, path: str, body: bytes) -> str:
        with self._lock:
            self._n += 1
            n = self._n
        self.upload_dir.mkdir(exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.strip("/"))[:80] or "root"
        p = self.upload_dir / f"{n:04d}-{method}-{safe}"
        p.write_bytes(body)
        return str(p)

    def requests(self) -> list[dict]:
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = HttpsServer(a.dir, a.workdir, a.ca_cert, a.ca_key, port=a.port).start()
    print(f"serving {srv.directory} on https://127.0.0.1:{srv.port}/ (guest: {srv.guest_url}), "
          f"log {srv.log_path}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
