"""An OpenAI-compatible fake of every upstream provider, for scripts/schemathesis: it answers each
generating path with a small valid answer, so the gateway's own handling is what gets fuzzed.
Prints its port on stdout, then serves until killed."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETION = {
    "id": "chatcmpl-fake",
    "object": "chat.completion",
    "created": 0,
    "model": "fake",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
CHUNK = dict(COMPLETION, object="chat.completion.chunk",
             choices=[{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}])
ANSWERS = {
    "/embeddings": {"object": "list", "model": "fake",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}},
    "/images/generations": {"created": 0, "data": [{"url": "http://127.0.0.1/fake.png"}]},
    "/audio/transcriptions": {"text": "ok"},
}


class Fake(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {"object": "list", "data": []})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions"):
            try:
                streamed = json.loads(body).get("stream") is True
            except (ValueError, AttributeError):
                streamed = False
            if streamed:
                events = f"data: {json.dumps(CHUNK)}\n\ndata: [DONE]\n\n".encode()
                return self.answer(200, events, "text/event-stream")
            return self.answer(200, COMPLETION)
        if path.endswith("/audio/speech"):
            return self.answer(200, b"ID3fake", "audio/mpeg")
        for suffix, answer in ANSWERS.items():
            if path.endswith(suffix):
                return self.answer(200, answer)
        self.answer(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})


server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
print(server.server_address[1], flush=True)
sys.stdout.close()
server.serve_forever()
