//! A minimal SMTP server on loopback that accepts every message and keeps it, so tests can read
//! the emails SpiderGate really sent over SMTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Default)]
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<String>>>,
    /// While set, every connection is turned away with `421` (a server that is down for
    /// maintenance), so a test can hold the port from the start instead of guessing a free one.
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl SmtpSink {
    /// Listens on `port` (0 = any free port).
    pub async fn start(port: u16) -> SmtpSink {
        Self::start_slow(port, Duration::ZERO).await
    }

    /// Listens on a free port but turns every sender away until [`SmtpSink::bring_up`].
    pub async fn start_down(delay: Duration) -> SmtpSink {
        let sink = Self::start_slow(0, delay).await;
        sink.down.store(true, std::sync::atomic::Ordering::SeqCst);
        sink
    }

    /// From now on, accept mail.
    pub fn bring_up(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Like `start`, but takes `delay` to accept each message, as a busy server does.
    pub async fn start_slow(port: u16, delay: Duration) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP sink");
        let sink = SmtpSink {
            port: listener.local_addr().expect("addr").port(),
            messages: Arc::default(),
            down: Arc::default(),
        };
        let (messages, down) = (sink.messages.clone(), sink.down.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                if down.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = stream.write_all(b"421 sink down, try later\r\n").await;
                    continue;
                }
                let messages = messages.clone();
                actix_web::rt::spawn(async move {
                    let _ = converse(stream, messages, delay).await;
                });
            }
        });
        sink
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("messages").clone()
    }

    /// Waits for the `n`th message (1-based) and returns it with quoted-printable soft breaks undone.
    pub async fn wait_for(&self, n: usize, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(message) = self.messages().get(n - 1) {
                return message.replace("=\r\n", "").replace("=3D", "=");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no email #{n} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn converse(
    stream: TcpStream,
    messages: Arc<Mutex<Vec<String>>>,
    delay: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?,
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push_str("\r\n");
                }
                tokio::time::sleep(delay).await;
                messages.lock().expect("messages").push(data);
                write.write_all(b"250 queued\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"250 OK\r\n").await?,
        }
    }
    Ok(())
}
