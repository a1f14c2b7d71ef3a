//! The real `spidergate` binary as a child process, for tests of what only a process shows
//! (logs, signals, restarts).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_spidergate");
pub const VAULT_KEY: &str = "vQkPm3Xo0s7zk9Jc4v2H5n8Lr6Tg1Yb0Wc3Ed7Fa9Ug=";

/// The binary with a clean environment: this database, admin token, vault key, and the fake
/// provider as groq and openai. `RUST_LOG=trace` unless the caller overrides it.
pub fn command(db_url: &str, admin: &str, fake_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env(
            "SPIDERGATE_PROVIDERS__GROQ__BASE_URL",
            format!("{fake_url}/groq/v1"),
        )
        .env(
            "SPIDERGATE_PROVIDERS__OPENAI__BASE_URL",
            format!("{fake_url}/openai/v1"),
        )
        .env("RUST_LOG", "trace")
        .env("SPIDERGATE_DATABASE__URL", db_url)
        .env("SPIDERGATE_SERVER__PORT", "0")
        .env("SPIDERGATE_SERVER__WORKERS", "1")
        .env("SPIDERGATE_ADMIN_TOKEN", admin)
        .env("SPIDERGATE_VAULT_KEY", VAULT_KEY);
    cmd
}

/// The server process; killed and reaped if the test fails before stopping it.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a prepared command and waits for its "listening" line.
pub fn start_command(mut command: Command) -> (Server, u16, mpsc::Receiver<String>) {
    let mut child = Server(
        command
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts"),
    );
    let stderr = child.0.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line in {seen:#?}"));
        if let Some(port) = line.split("address=127.0.0.1:").nth(1) {
            let port = port
                .split_whitespace()
                .next()
                .expect("port")
                .parse()
                .expect("numeric port");
            return (child, port, rx);
        }
        seen.push(line);
    }
}

impl Server {
    /// Sends SIGTERM and waits for the process to exit, returning whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().is_ok_and(|status| status.success())
    }
}
