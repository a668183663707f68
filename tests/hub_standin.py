"""Minimal stdlib-only stand-in for the Hugging Face Hub *upload* API (create_repo + upload_folder).

Routes (repo-type prefix is "" for models, "datasets/", "spaces/" or "kernels/" otherwise):
  POST /api/repos/create                                -> {"url": ...}; 409 if it already exists
  POST /api/validate-yaml                               -> {"errors": [], "warnings": []}
  POST /api/{type}s/{repo_id}/preupload/{rev}           -> {"files": [{path, uploadMode, shouldIgnore, oid}]}
  POST /{prefix}{repo_id}.git/info/lfs/objects/batch    -> LFS batch, "basic" transfer only
  PUT  /_lfs/{sha256}                                   -> raw bytes of one LFS object (sha256-checked)
  POST /api/{type}s/{repo_id}/commit/{rev}              -> NDJSON commit -> {"commitOid", "commitUrl", ...}

The client must NOT be on the Xet path: set HF_HUB_DISABLE_XET=1 before importing huggingface_hub
(or set huggingface_hub.constants.HF_HUB_DISABLE_XET = True) when hf_xet is installed.
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".gguf", ".npy", ".npz")
_T = r"(?P<type>model|dataset|space|kernel)s"
_R = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("POST", re.compile(r"/api/repos/create"), "create_repo"),
    ("POST", re.compile(r"/api/validate-yaml"), "validate_yaml"),
    ("POST", re.compile(rf"/api/{_T}/{_R}/preupload/(?P<rev>[^/]+)"), "preupload"),
    ("POST", re.compile(rf"/api/{_T}/{_R}/commit/(?P<rev>[^/]+)"), "commit"),
    ("POST", re.compile(rf"/(?:(?P<type>dataset|space|kernel)s/)?{_R}\.git/info/lfs/objects/batch"), "lfs_batch"),
    ("PUT", re.compile(r"/_lfs/(?P<oid>[0-9a-f]{64})"), "lfs_put"),
]


@dataclass
class Commit:
    oid: str
    message: str
    description: str
    parent: str | None
    files: dict[str, bytes]  # full snapshot of the tree after this commit: path -> bytes
    lfs_paths: set[str] = field(default_factory=set)


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit] = field(default_factory=list)  # in order, on "main"

    @property
    def head(self) -> Commit | None:
        return self.commits[-1] if self.commits else None

    @property
    def files(self) -> dict[str, bytes]:
        return dict(self.head.files) if self.head else {}


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubUploadStandIn:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, namespace: str = "user"):
        self.host, self.port, self.namespace = host, port, namespace
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo_type, repo_id) -> Repo
        self.lfs_objects: dict[str, bytes] = {}  # sha256 hex -> bytes
        self.requests: list[tuple[str, str]] = []  # (method, path) log, handy for debugging
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            server_state = standin

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    # -- route implementations (called with the lock held) --------------------------------------
    def _get_repo(self, m) -> Repo:
        key = (m["type"] or "model", m["repo"])
        if key not in self.repos:
            raise HttpError(404, f"Repository {key[1]} not found", "RepoNotFound")
        return self.repos[key]

    def create_repo(self, m, body: bytes):
        p = json.loads(body)
        repo_type = p.get("type") or "model"
        repo_id = f"{p.get('organization') or self.namespace}/{p['name']}"
        url = f"{self.endpoint}/{PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            # exist_ok=True swallows the 409 but still reads r.json()["url"]
            raise HttpError(409, f"You already created this {repo_type} repo: {repo_id}", url=url)
        private = p.get("visibility") == "private" or bool(p.get("private"))
        self.repos[(repo_type, repo_id)] = Repo(repo_id, repo_type, private)
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def validate_yaml(self, m, body: bytes):
        return 200, {"errors": [], "warnings": []}

    def preupload(self, m, body: bytes):
        repo, out = self._get_repo(m), []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = f["path"].endswith(LFS_SUFFIXES) or b"\x00" in sample or f["size"] >= 10 * 1024 * 1024
            remote = repo.head.files.get(f["path"]) if repo.head else None
            oid = None
            if remote is not None:  # same OID convention as CommitOperationAdd._local_oid
                oid = hashlib.sha256(remote).hexdigest() if lfs else _git_blob_sha1(remote)
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return 200, {"files": out}

    def lfs_batch(self, m, body: bytes):
        self._get_repo(m)
        p, objects = json.loads(body), []
        if p.get("operation") != "upload" or "basic" not in p.get("transfers", ["basic"]):
            raise HttpError(400, "only upload with basic transfer is supported")
        for o in p["objects"]:
            obj = {"oid": o["oid"], "size": o["size"]}
            if o["oid"] not in self.lfs_objects:  # no "actions" => client treats it as already uploaded
                obj["actions"] = {"upload": {"href": f"{self.endpoint}/_lfs/{o['oid']}", "header": {}}}
            objects.append(obj)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_put(self, m, body: bytes):
        if hashlib.sha256(body).hexdigest() != m["oid"]:
            raise HttpError(400, "sha256 of uploaded content does not match oid")
        self.lfs_objects[m["oid"]] = body
        return 200, {}

    def commit(self, m, body: bytes):
        repo, rev = self._get_repo(m), unquote(m["rev"])
        if rev != "main":
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "first NDJSON line must be the header")
        header = lines[0]["value"]
        parent = repo.head.oid if repo.head else None
        if header.get("parentCommit") and header["parentCommit"] != parent:
            raise HttpError(412, "parentCommit does not match the branch head")
        files = repo.files
        lfs_paths = set(repo.head.lfs_paths) if repo.head else set()
        for item in lines[1:]:
            key, v = item["key"], item["value"]
            if key == "file":
                files[v["path"]] = base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
                lfs_paths.discard(v["path"])
            elif key == "lfsFile":
                if v["oid"] not in self.lfs_objects:
                    raise HttpError(400, f"LFS object {v['oid']} was never uploaded")
                files[v["path"]] = self.lfs_objects[v["oid"]]
                lfs_paths.add(v["path"])
            elif key == "deletedFile":
                files.pop(v["path"], None)
            elif key == "deletedFolder":
                prefix = v["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HttpError(400, f"unsupported commit operation key: {key}")
        h = hashlib.sha1(f"{parent}\n{header.get('summary')}\n{len(repo.commits)}".encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        commit = Commit(h.hexdigest(), header.get("summary", ""), header.get("description", ""), parent, files, lfs_paths)
        repo.commits.append(commit)
        url = f"{self.endpoint}/{PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        return 200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None}


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_state: HubUploadStandIn

    def log_message(self, *args):  # silence stderr logging
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self):
        path = urlsplit(self.path).path
        body = self._read_body()
        state = self.server_state
        status, payload, code = 404, {"error": f"no route for {self.command} {path}"}, None
        try:
            for method, pattern, name in ROUTES:
                m = pattern.fullmatch(path)
                if method == self.command and m:
                    with state.lock:
                        state.requests.append((self.command, path))
                        status, payload = getattr(state, name)(m.groupdict(), body)
                    break
        except HttpError as e:
            status, payload, code = e.status, {"error": e.message, **e.extra}, e.code
        except Exception as e:  # surface server bugs to the client as 500
            status, payload = 500, {"error": f"{type(e).__name__}: {e}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
        if status >= 400:
            self.send_header("X-Error-Message", payload["error"])
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch
