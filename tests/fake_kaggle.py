"""A fake Kaggle API server for the tests: the real kaggle client talks to it over HTTP.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the client sends its RPCs (POST /api/v1/<Service>/<Method>,
JSON bodies) to http://localhost. Port 80 needs root and may be taken, so the server listens
on a free port of 127.0.0.1 and the tests point HTTP_PROXY at it: the client's requests still
go to http://localhost/..., through this server acting as that host. It keeps what it received
(requests, uploaded bytes) for the tests to check field by field.
"""
from __future__ import annotations

import io
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

BASE = "http://localhost"
TOKEN = "KGAT_test-secret-4f9a1c"
REPO = Path(__file__).resolve().parents[1]


class FakeKaggle:
    """State of the fake service: users' tokens, competitions, datasets, kernels, submissions."""

    def __init__(self, token: str, username: str = "tester"):
        self.token = token
        self.username = username
        self.competitions = {}      # slug -> {"zip": bytes, "rules_accepted": bool, "solution": {id: label},
        #                                      "evaluation_metric": Kaggle's name (optional),
        #                                      "record_status": an HTTP error GetCompetition answers (optional)}
        self.blobs = {}             # upload token -> bytes received
        self.datasets = {}          # owner/slug -> list of create requests (one per version)
        self.kernels = {}           # owner/slug -> last SaveKernel request
        self.kernel_status = "COMPLETE"
        self.outputs = {"submission.csv": b"Id,Category\nt0.jpg,1\n"}
        self.submissions = []
        self.pending_polls = 2      # ListSubmissions answers PENDING this many times first
        self.calls = []             # (method, body, authorization header)
        self.server = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Serve on a free port of 127.0.0.1 in a thread; return the port."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                fake.handle(self, "POST")

            def do_PUT(self):
                fake.handle(self, "PUT")

            def do_GET(self):
                fake.handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # polled every 20 ms, not serve_forever's 0.5 s: shutdown() waits for the next poll (0.5 s a test)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # ------------------------------------------------------------ plumbing

    def handle(self, req: BaseHTTPRequestHandler, verb: str) -> None:
        path = urlsplit(req.path).path  # proxied requests carry the whole URL
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if verb == "PUT" and path.startswith("/upload/"):
            self.blobs[path.rsplit("/", 1)[1]] = body
            return self.reply(req, 200, {})
        if verb == "GET" and path.startswith("/files/"):
            return self.send_file(req, path)
        if verb != "POST" or not path.startswith("/api/v1/"):
            return self.reply(req, 404, {"code": 404, "message": f"no route {verb} {path}"})
        method = path[len("/api/v1/"):]
        data = json.loads(body or b"{}")
        self.calls.append((method, data, req.headers.get("Authorization", "")))
        if method != "security.OAuthService/IntrospectToken" and not self.authorised(req):
            return self.reply(req, 401, {"code": 401, "message": "Unauthenticated"})
        handler = getattr(self, "rpc_" + method.split("/")[-1], None)
        if handler is None:
            return self.reply(req, 404, {"code": 404, "message": f"fake server has no {method}"})
        handler(req, data)

    def authorised(self, req) -> bool:
        """Accept the token as a Bearer token, or as the key of kaggle.json's legacy Basic auth."""
        import base64

        basic = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        return req.headers.get("Authorization", "") in (f"Bearer {self.token}", f"Basic {basic}")

    def reply(self, req, code: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        req.send_response(code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(raw)))
        req.end_headers()
        req.wfile.write(raw)

    def send_file(self, req, path: str) -> None:
        name = path.rsplit("/", 1)[1]
        if name.endswith(".zip") and name[:-4] in self.competitions:
            raw = self.competitions[name[:-4]]["zip"]
        elif name in self.outputs:
            raw = self.outputs[name]
        else:
            return self.reply(req, 404, {"code": 404, "message": f"no file {name}"})
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(raw)))
        req.end_headers()
        req.wfile.write(raw)

    def redirect(self, req, url: str) -> None:
        req.send_response(302)
        req.send_header("Location", url)
        req.send_header("Content-Length", "0")
        req.end_headers()

    def upload_slot(self, prefix: str) -> dict:
        token = f"{prefix}-{len(self.blobs) + len(self.calls)}"
        return {"token": token, "createUrl": f"{BASE}/upload/{token}"}

    # ------------------------------------------------------------ RPCs

    def rpc_IntrospectToken(self, req, data):
        active = data.get("token") == self.token
        self.reply(req, 200, {"active": active, "username": self.username if active else ""})

    def rpc_GetCompetition(self, req, data):
        """The competition's record (kagglesdk ApiCompetition), with its evaluation metric when the test set one."""
        slug = data.get("competitionName")
        comp = self.competitions.get(slug)
        if comp is None:
            return self.reply(req, 404, {"code": 404, "message": "Competition not found"})
        if comp.get("record_status"):  # a record Kaggle cannot serve (the data still can be)
            return self.reply(req, comp["record_status"], {"code": comp["record_status"], "message": "Not Implemented"})
        record = {"id": 1, "ref": f"https://www.kaggle.com/competitions/{slug}", "title": slug}
        if comp.get("evaluation_metric"):
            record["evaluationMetric"] = comp["evaluation_metric"]
        self.reply(req, 200, record)

    def rpc_DownloadDataFiles(self, req, data):
        comp = self.competitions.get(data.get("competitionName"))
        if comp is None:
            return self.reply(req, 404, {"code": 404, "message": "Competition not found"})
        if not comp["rules_accepted"]:
            return self.reply(req, 403, {"code": 403, "message": "You must accept this competition's rules "
                                                                 "before you'll be able to download files."})
        self.redirect(req, f"{BASE}/files/{data['competitionName']}.zip")

    def rpc_StartSubmissionUpload(self, req, data):
        self.reply(req, 200, self.upload_slot("submission"))

    def rpc_CreateSubmission(self, req, data):
        ref = 1000 + len(self.submissions)
        csv = self.blobs.get(data.get("blobFileTokens"), b"")
        self.submissions.append({"ref": ref, "competition": data.get("competitionName"),
                                 "description": data.get("submissionDescription"), "csv": csv,
                                 "polls": self.pending_polls, "date": self.next_date(),
                                 "file_name": "submission.csv"})
        self.reply(req, 200, {"message": "Successfully submitted", "ref": ref})

    def add_submission(self, competition: str, description: str, public=None, private=None, status="COMPLETE",
                       error: str = "") -> int:
        """Put a submission made earlier (on the website, or by an older kit) in the list; return its ref."""
        ref = 1000 + len(self.submissions)
        self.submissions.append({"ref": ref, "competition": competition, "description": description, "csv": b"",
                                 "polls": 0, "date": self.next_date(), "file_name": f"sub{ref}.csv",
                                 "fixed": {"status": status, "publicScore": public, "privateScore": private,
                                           "errorDescription": error}})
        return ref

    def next_date(self) -> str:
        """Return the next submission's date as the API writes it (UTC): now, and after every earlier one."""
        from datetime import datetime, timedelta, timezone

        now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        return (now + timedelta(seconds=len(self.submissions))).isoformat(timespec="milliseconds") + "Z"

    def rpc_ListSubmissions(self, req, data):
        """Kaggle's competition submissions list: newest first, in pages (page or pageToken, pageSize)."""
        subs = [s for s in reversed(self.submissions) if s["competition"] == data.get("competitionName")]
        size = int(data.get("pageSize") or 20)
        page = max(1, int(data.get("pageToken") or data.get("page") or 1))  # kaggle 2.0.2 sends page -1: the first
        chosen = subs[(page - 1) * size: page * size]
        rows = [self.list_row(sub) for sub in chosen]
        more = len(subs) > page * size
        self.reply(req, 200, {"submissions": rows, "nextPageToken": str(page + 1) if more else ""})

    def list_row(self, sub: dict) -> dict:
        """Return one ApiSubmission as the API sends it (camelCase fields; scores as text; absent when none)."""
        row = {"ref": sub["ref"], "description": sub["description"], "status": "PENDING", "date": sub["date"],
               "fileName": sub["file_name"], "totalBytes": len(sub["csv"]), "submittedBy": self.username,
               "submittedByRef": self.username, "teamName": self.username,
               "url": f"/submissions/{sub['ref']}/{sub['file_name']}"}
        if sub["polls"] > 0:
            sub["polls"] -= 1
        else:
            scored = sub.get("fixed") or self.score(sub)
            row.update({k: v for k, v in scored.items() if v not in (None, "")})
        return row

    def score(self, sub: dict) -> dict:
        """Score a submission's CSV against the competition's solution, like Kaggle's public board.

        A competition with "private_ids" scores those ids apart as the private board, sent once its
        "closed" is true (Kaggle shows private scores after the deadline).
        """
        comp = self.competitions[sub["competition"]]
        solution, private = comp["solution"], set(comp.get("private_ids", ()))
        try:
            frame = pd.read_csv(io.BytesIO(sub["csv"]), dtype=str)
            got = dict(zip(frame.iloc[:, 0], frame.iloc[:, 1]))
            if set(got) != set(solution):
                raise ValueError("ids do not match the solution")
        except Exception as err:
            return {"status": "ERROR", "errorDescription": f"Submission error: {err}"}

        def accuracy(ids):
            return f"{sum(got[k] == solution[k] for k in ids) / len(ids):.5f}" if ids else None

        public = accuracy([k for k in solution if k not in private])
        return {"status": "COMPLETE", "publicScore": public,
                "privateScore": accuracy(sorted(private)) if comp.get("closed") else None}

    def rpc_StartBlobUpload(self, req, data):
        self.reply(req, 200, self.upload_slot(data.get("name", "blob")))

    def rpc_GetDatasetStatus(self, req, data):
        ref = f"{data.get('ownerSlug')}/{data.get('datasetSlug')}"
        if ref not in self.datasets:
            return self.reply(req, 404, {"code": 404, "message": "Dataset not found"})
        self.reply(req, 200, {"status": "READY"})

    def rpc_CreateDataset(self, req, data):
        ref = f"{data.get('ownerSlug')}/{data.get('slug')}"
        self.datasets.setdefault(ref, []).append(data)
        self.reply(req, 200, {"ref": ref, "url": f"{BASE}/datasets/{ref}", "status": "ok"})

    def rpc_CreateDatasetVersion(self, req, data):
        ref = f"{data.get('ownerSlug')}/{data.get('datasetSlug')}"
        if ref not in self.datasets:
            return self.reply(req, 404, {"code": 404, "message": "Dataset not found"})
        self.datasets[ref].append(data)
        self.reply(req, 200, {"ref": ref, "url": f"{BASE}/datasets/{ref}", "status": "ok"})

    def rpc_SaveKernel(self, req, data):
        slug = data.get("slug")
        self.kernels[slug] = data
        self.reply(req, 200, {"ref": f"/code/{slug}", "url": f"{BASE}/code/{slug}", "versionNumber": 1})

    def rpc_GetKernelSessionStatus(self, req, data):
        ref = f"{data.get('userName')}/{data.get('kernelSlug')}"
        if ref not in self.kernels:
            return self.reply(req, 404, {"code": 404, "message": "Kernel not found"})
        failure = "cell 5 raised" if self.kernel_status == "ERROR" else ""
        self.reply(req, 200, {"status": self.kernel_status, "failureMessage": failure})

    def rpc_ListKernelSessionOutput(self, req, data):
        files = [{"url": f"{BASE}/files/{name}", "fileName": name} for name in self.outputs]
        self.reply(req, 200, {"files": files, "log": "[{\"data\": \"done\"}]"})

    def uploaded_text(self) -> str:
        """Return every uploaded blob's bytes, zips opened, as one string (for secret checks)."""
        import zipfile

        parts = []
        for raw in self.blobs.values():
            if raw[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                    parts += [zf.read(n).decode("utf-8", "replace") for n in zf.namelist()]
            else:
                parts.append(raw.decode("utf-8", "replace"))
        return "\n".join(parts)


def can_bind() -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def fake(tmp_path):
    """Start the fake Kaggle; yield it with the environment a user's shell would have."""
    if not can_bind():
        pytest.skip("cannot bind a port on 127.0.0.1 for the fake Kaggle server")
    server = FakeKaggle(TOKEN)
    port = server.start()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KAGGLE_") and k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PYTHONPATH": str(REPO),
                "KAGGLE_API_ENVIRONMENT": "LOCALHOST", "KAGGLE_API_TOKEN": TOKEN,
                "HTTP_PROXY": f"http://127.0.0.1:{port}", "http_proxy": f"http://127.0.0.1:{port}"})
    server.env = env
    yield server
    server.stop()
