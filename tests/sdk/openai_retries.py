"""Drives the real OpenAI Python SDK against a gateway: one chat completion with retries on.
Prints `ready` once loaded, waits for a line on stdin, then prints one JSON line: the outcome, the HTTP attempts the SDK made and the waits between them.
Usage: openai_retries.py BASE_URL API_KEY MODEL MAX_RETRIES"""

import json
import sys
import time

import openai

base_url, api_key, model, max_retries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sent = []
client = openai.OpenAI(
    base_url=base_url,
    api_key=api_key,
    max_retries=max_retries,
    timeout=30,
    # The SDK's own HTTP client class (httpx, or httpx2 in newer releases), counting each request.
    http_client=openai.DefaultHttpxClient(
        event_hooks={"request": [lambda _request: sent.append(time.monotonic())]}
    ),
)
print("ready", flush=True)
sys.stdin.readline()  # the test says when
try:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    outcome = {"ok": True, "model": answer.model}
except openai.APIStatusError as error:
    body = error.body if isinstance(error.body, dict) else {}
    code = body.get("code") or (body.get("error") or {}).get("code")
    outcome = {"ok": False, "status": error.status_code, "code": code, "kind": type(error).__name__}
waits = [later - earlier for earlier, later in zip(sent, sent[1:])]
print(json.dumps(dict(outcome, attempts=len(sent), waits=waits)))
