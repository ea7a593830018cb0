"""A local HTTP server speaking enough of Elasticsearch 8.x for the shipper and the installer.

Elasticsearch cannot run on these machines. This server answers ``GET /`` (with the product
header the 8.x client insists on), ``_bulk`` (NDJSON; ``create`` gives 201, or 409 when the id
exists; items named in :attr:`FakeElasticsearch.rejects_first` get 429 on their first try; a
document with ``"malformed"`` in its ``labels`` gets a 400 ``mapper_parsing_exception``),
``_index_template``, ``_ilm/policy`` and Kibana's ``/api/saved_objects/_import``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeElasticsearch:
    def __init__(self, reject_429: Callable[[str], bool] = lambda _id: False) -> None:
        self.reject_429 = reject_429
        self.docs: dict[str, dict[str, Any]] = {}
        self.creates: dict[str, int] = {}
        self.first_sent: list[str] = []  # ids in the order they were first sent
        self.tried: set[str] = set()
        self.answered_429 = 0
        self.bulk_requests = 0
        self.templates: dict[str, Any] = {}
        self.policies: dict[str, Any] = {}
        self.saved_objects: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/":
                    self._answer(
                        200,
                        {
                            "name": "fake",
                            "cluster_name": "fake",
                            "version": {"number": "8.19.0", "build_flavor": "default"},
                            "tagline": "You Know, for Search",
                        },
                    )
                else:
                    self._answer(404, {"error": "not found", "status": 404})

            def do_PUT(self) -> None:
                path = self.path.split("?")[0]
                body = self._body()
                if path.endswith("/_bulk"):
                    self._answer(200, fake.bulk(body))
                elif path.startswith("/_index_template/"):
                    fake.templates[path.rsplit("/", 1)[1]] = json.loads(body)
                    self._answer(200, {"acknowledged": True})
                elif path.startswith("/_ilm/policy/"):
                    fake.policies[path.rsplit("/", 1)[1]] = json.loads(body)
                    self._answer(200, {"acknowledged": True})
                else:
                    self._answer(404, {"error": "not found", "status": 404})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                if path.endswith("/_bulk"):
                    self._answer(200, fake.bulk(self._body()))
                elif path == "/api/saved_objects/_import":
                    if self.headers.get("kbn-xsrf") is None:
                        self._answer(400, {"message": "Request must contain a kbn-xsrf header."})
                        return
                    fake.import_saved_objects(self.headers, self._body())
                    self._answer(200, {"success": True, "successCount": len(fake.saved_objects)})
                else:
                    self._answer(404, {"error": "not found", "status": 404})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bulk(self, body: bytes) -> dict[str, Any]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items = []
        with self.lock:
            self.bulk_requests += 1
            for action, source in zip(lines[::2], lines[1::2], strict=True):
                ((op, meta),) = action.items()
                doc_id = meta["_id"]
                if doc_id not in self.tried:
                    self.tried.add(doc_id)
                    self.first_sent.append(doc_id)
                    if self.reject_429(doc_id):
                        self.answered_429 += 1
                        items.append(
                            {
                                op: {
                                    "_id": doc_id,
                                    "status": 429,
                                    "error": {
                                        "type": "es_rejected_execution_exception",
                                        "reason": "queue full",
                                    },
                                }
                            }
                        )
                        continue
                if "malformed" in (source.get("labels") or {}):
                    items.append(
                        {
                            op: {
                                "_id": doc_id,
                                "status": 400,
                                "error": {
                                    "type": "mapper_parsing_exception",
                                    "reason": "failed to parse field [labels.malformed]",
                                },
                            }
                        }
                    )
                elif doc_id in self.docs:
                    items.append(
                        {
                            op: {
                                "_id": doc_id,
                                "status": 409,
                                "error": {
                                    "type": "version_conflict_engine_exception",
                                    "reason": "document already exists",
                                },
                            }
                        }
                    )
                else:
                    self.docs[doc_id] = source
                    self.creates[doc_id] = self.creates.get(doc_id, 0) + 1
                    items.append(
                        {
                            op: {
                                "_index": meta["_index"],
                                "_id": doc_id,
                                "status": 201,
                                "result": "created",
                            }
                        }
                    )
        errors = any(next(iter(item.values()))["status"] >= 300 for item in items)
        return {"took": 1, "errors": errors, "items": items}

    def import_saved_objects(self, headers: Any, body: bytes) -> None:
        # multipart/form-data with one file part of NDJSON
        boundary = headers.get("Content-Type").split("boundary=")[1].encode()
        for part in body.split(b"--" + boundary):
            if b"filename=" in part:
                ndjson = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
                self.saved_objects = [json.loads(x) for x in ndjson.splitlines() if x.strip()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
