//! A scripted fake of every upstream provider, on loopback. Each provider is mounted under
//! `/<provider id>/…`; the behaviour is chosen by the API key the gateway sends, so one test can
//! give each key its own failure. Every request is logged for "was (not) called" assertions.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake does for a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// A normal answer (JSON, or SSE when the request streams).
    Ok,
    RateLimited {
        retry_after_secs: u64,
    },
    ServerError,
    Unauthorized,
    NotFound,
    BadRequest,
    /// Never answers.
    Hang,
    /// Streams two chunks, then drops the connection.
    DieMidStream,
    /// Streams a chunk every 20 ms for 10 s; records when the stream is dropped.
    SlowStream,
    /// 200 with `{"error": …}` instead of an answer.
    ErrorIn200,
    /// 200 with a JSON object that has no `choices` (or `data`).
    NoChoices,
    /// 200 `text/event-stream` whose `data:` lines are not JSON.
    GarbageStream,
    /// 200 with a head at once and a body that never finishes.
    EndlessBody,
    /// A normal chat answer reporting this usage: `prompt_tokens` (`None`: the bytes of the
    /// messages it was sent, an honest count) and `completion_tokens` (`None`: the completion
    /// limit it was sent, the most an honest provider generates).
    Reports {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub api_key: String,
    pub body: Value,
    /// The names of the request's headers, lowercase.
    pub header_names: Vec<String>,
    /// The request's headers (lowercase names), for dialect checks.
    pub headers: HashMap<String, String>,
    /// The query string.
    pub query: String,
    /// The W3C trace context it was sent.
    pub traceparent: Option<String>,
    /// The client's address: one per connection, so equal addresses mean a reused connection.
    pub peer: Option<std::net::SocketAddr>,
    /// The HTTP version the request came over (HTTP/2 only over TLS, by ALPN).
    pub version: actix_web::http::Version,
}

#[derive(Default)]
struct Script {
    /// One-shot behaviours, consumed first.
    queued: HashMap<String, VecDeque<Behaviour>>,
    /// Standing behaviour per key (default `Ok`).
    standing: HashMap<String, Behaviour>,
    log: Vec<Logged>,
}

/// How far the last `SlowStream` got before it was dropped (chunks sent), once it was dropped.
#[derive(Default)]
struct SlowStreamProbe {
    dropped_after: Mutex<Option<usize>>,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    script: Arc<Mutex<Script>>,
    probe: Arc<SlowStreamProbe>,
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        Self::start_on(None)
    }

    /// The same fake over TLS with `tls` (which offers HTTP/2 and HTTP/1.1 by ALPN), at an
    /// `https://` URL.
    pub async fn start_tls(tls: rustls::ServerConfig) -> FakeProvider {
        Self::start_on(Some(tls))
    }

    fn start_on(tls: Option<rustls::ServerConfig>) -> FakeProvider {
        let script = Arc::new(Mutex::new(Script::default()));
        let probe = Arc::new(SlowStreamProbe::default());
        let data = web::Data::from(script.clone());
        let probe_data = web::Data::from(probe.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(probe_data.clone())
                .default_service(web::to(serve))
        })
        .workers(1);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(("127.0.0.1", 0), tls),
            None => server.bind(("127.0.0.1", 0)),
        }
        .expect("bind fake provider");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        FakeProvider {
            url: format!("{scheme}://127.0.0.1:{port}"),
            script,
            probe,
        }
    }

    /// Every call with `api_key` behaves like this from now on.
    pub fn set(&self, api_key: &str, behaviour: Behaviour) {
        self.script
            .lock()
            .expect("script")
            .standing
            .insert(api_key.to_owned(), behaviour);
    }

    /// The next call with `api_key` behaves like this, once.
    pub fn once(&self, api_key: &str, behaviour: Behaviour) {
        self.script
            .lock()
            .expect("script")
            .queued
            .entry(api_key.to_owned())
            .or_default()
            .push_back(behaviour);
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.script.lock().expect("script").log.clone()
    }

    /// Chunks the slow stream had sent when it was dropped; `None` while it still runs.
    pub fn slow_stream_dropped_after(&self) -> Option<usize> {
        *self.probe.dropped_after.lock().expect("probe")
    }

    /// Calls made with `api_key` (any path).
    pub fn calls(&self, api_key: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.api_key == api_key)
            .count()
    }
}

fn behaviour_for(script: &Mutex<Script>, logged: Logged) -> Behaviour {
    let mut script = script.lock().expect("script");
    let key = logged.api_key.clone();
    script.log.push(logged);
    if let Some(next) = script.queued.get_mut(&key).and_then(VecDeque::pop_front) {
        return next;
    }
    script.standing.get(&key).cloned().unwrap_or(Behaviour::Ok)
}

async fn serve(
    req: HttpRequest,
    body: Bytes,
    script: web::Data<Mutex<Script>>,
    probe: web::Data<SlowStreamProbe>,
) -> HttpResponse {
    // The key wherever the dialect puts it: bearer (OpenAI), x-api-key (Anthropic), x-goog-api-key
    // (Gemini), api-key (Azure).
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let api_key = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| header("x-api-key"))
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| header("api-key"))
        .unwrap_or_default()
        .to_owned();
    let path = req.path().to_owned();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let behaviour = behaviour_for(
        &script,
        Logged {
            path: path.clone(),
            api_key: api_key.clone(),
            body: json_body.clone(),
            traceparent: req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            header_names: req
                .headers()
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect(),
            headers: req
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            query: req.query_string().to_owned(),
            peer: req.peer_addr(),
            version: req.version(),
        },
    );
    match behaviour {
        Behaviour::Ok => ok(&path, &api_key, &json_body, body.len()),
        Behaviour::RateLimited { retry_after_secs } => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .json(json!({ "error": { "message": "rate limited", "type": "rate_limit_error" } })),
        Behaviour::ServerError => HttpResponse::InternalServerError()
            .json(json!({ "error": { "message": "upstream exploded" } })),
        Behaviour::Unauthorized => HttpResponse::Unauthorized().json(
            json!({ "error": { "message": format!("Incorrect API key provided: {api_key}") } }),
        ),
        Behaviour::NotFound => {
            HttpResponse::NotFound().json(json!({ "error": { "message": "no such model here" } }))
        }
        Behaviour::BadRequest => HttpResponse::BadRequest()
            .json(json!({ "error": { "message": "messages[0].role is invalid" } })),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
        Behaviour::DieMidStream if path.ends_with("/messages") => {
            crate::fake_dialects::anthropic(&api_key, &json_body, true)
        }
        Behaviour::DieMidStream if path.contains(":streamGenerateContent") => {
            crate::fake_dialects::gemini(&api_key, &path, &json_body, true)
        }
        Behaviour::DieMidStream => {
            // Pace the chunks so they leave the socket before the connection is cut.
            let events = [
                chunk_event("par", &json_body),
                chunk_event("tial", &json_body),
            ];
            let chunks =
                stream::iter(events.map(Some).into_iter().chain([None])).then(|event| async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    event.map(Bytes::from).ok_or_else(|| {
                        actix_web::error::ErrorInternalServerError("connection lost")
                    })
                });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(chunks)
        }
        Behaviour::SlowStream => slow_stream(probe.into_inner(), json_body),
        Behaviour::ErrorIn200 => HttpResponse::Ok().json(
            json!({ "error": { "message": "the engine is overloaded", "type": "server_error" } }),
        ),
        Behaviour::NoChoices => {
            HttpResponse::Ok().json(json!({ "id": "chatcmpl-fake", "object": "chat.completion" }))
        }
        Behaviour::GarbageStream => {
            let lines = ["data: <html>502 Bad Gateway</html>\n\n", "data: [DONE]\n\n"];
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(stream::iter(
                    lines.map(|l| Ok::<_, actix_web::Error>(Bytes::from(l))),
                ))
        }
        Behaviour::EndlessBody => {
            let opening = stream::once(async { Ok::<_, actix_web::Error>(Bytes::from("{")) });
            let never = stream::pending();
            HttpResponse::Ok()
                .content_type("application/json")
                .streaming(opening.chain(never))
        }
        Behaviour::Reports {
            prompt_tokens,
            completion_tokens,
        } => {
            let prompt = prompt_tokens.unwrap_or(json_body["messages"].to_string().len() as u64);
            let sent_limit = json_body["max_completion_tokens"]
                .as_u64()
                .or(json_body["max_tokens"].as_u64())
                .unwrap_or(4096);
            let completion = completion_tokens.unwrap_or(sent_limit);
            HttpResponse::Ok().json(json!({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": json_body["model"],
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "counted" }, "finish_reason": "length" }],
                "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion }
            }))
        }
    }
}

/// Counts chunks sent and records the count when the response stream is dropped.
struct DropRecorder {
    probe: Arc<SlowStreamProbe>,
    sent: usize,
}

impl Drop for DropRecorder {
    fn drop(&mut self) {
        *self.probe.dropped_after.lock().expect("probe") = Some(self.sent);
    }
}

fn slow_stream(probe: Arc<SlowStreamProbe>, body: Value) -> HttpResponse {
    let recorder = DropRecorder { probe, sent: 0 };
    let chunks = stream::unfold((recorder, body), |(mut recorder, body)| async move {
        if recorder.sent >= 500 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        recorder.sent += 1;
        let event = Bytes::from(chunk_event("tick ", &body));
        Some((Ok::<_, actix_web::Error>(event), (recorder, body)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(chunks)
}

fn ok(path: &str, api_key: &str, body: &Value, body_len: usize) -> HttpResponse {
    if path.ends_with("/messages") {
        return crate::fake_dialects::anthropic(api_key, body, false);
    }
    if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        return crate::fake_dialects::gemini(api_key, path, body, false);
    }
    if path.ends_with("/models") {
        return HttpResponse::Ok().json(
            json!({ "object": "list", "data": [{ "id": "fake-model", "object": "model" }] }),
        );
    }
    if path.ends_with("/chat/completions") {
        if body["stream"] == true {
            let mut events = vec![
                chunk_event("hello ", body),
                chunk_event("from ", body),
                chunk_event(api_key, body),
            ];
            if body["stream_options"]["include_usage"] == true {
                events.push(format!(
                    "data: {}\n\n",
                    json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": body["model"], "choices": [], "usage": { "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13 } })
                ));
            }
            events.push("data: [DONE]\n\n".to_owned());
            let paced = stream::iter(
                events
                    .into_iter()
                    .map(|e| Ok::<_, actix_web::Error>(Bytes::from(e))),
            );
            return HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(paced);
        }
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": format!("hello from {api_key}") }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 },
            "system_fingerprint": "fp_fake"
        }));
    }
    if path.ends_with("/embeddings") {
        return HttpResponse::Ok().json(json!({
            "object": "list", "model": body["model"],
            "data": [{ "object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3] }],
            "usage": { "prompt_tokens": 4, "total_tokens": 4 }
        }));
    }
    if path.ends_with("/images/generations") {
        return HttpResponse::Ok()
            .json(json!({ "created": 1, "data": [{ "url": "https://images.example/fake.png" }] }));
    }
    if path.ends_with("/audio/speech") {
        let audio: Vec<Result<Bytes, actix_web::Error>> = vec![
            Ok(Bytes::from_static(b"FAKE")),
            Ok(Bytes::from_static(b"AUDIO")),
        ];
        return HttpResponse::Ok()
            .content_type("audio/mpeg")
            .streaming(stream::iter(audio));
    }
    if path.ends_with("/audio/transcriptions") {
        return HttpResponse::Ok().json(json!({ "text": format!("heard {body_len} bytes") }));
    }
    HttpResponse::NotFound().json(json!({ "error": { "message": format!("fake has no {path}") } }))
}

fn chunk_event(content: &str, body: &Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": body["model"],
        "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": null }]
    });
    format!("data: {chunk}\n\n")
}
