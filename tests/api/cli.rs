//! The operator's commands: quiet unless asked, and `status` says what a config would run with.

use crate::helpers::TestDb;
use std::process::Output;

fn run(db: &TestDb, args: &[&str]) -> Output {
    crate::process::command(&db.url(), "admin-cli", "http://127.0.0.1:9")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[actix_web::test]
async fn status_reports_pending_migrations_until_the_first_start_and_commands_are_quiet() {
    let db = TestDb::fresh().await;
    let fresh = run(&db, &["status"]);
    let report = text(&fresh.stdout);
    assert!(fresh.status.success(), "{report}{}", text(&fresh.stderr));
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {report}"))
            .to_owned()
    };
    assert!(line("database").contains(" ok "), "{report}");
    assert!(line("migrations").contains("pending"), "{report}");
    assert!(line("vault").contains("1 key(s) loaded"), "{report}");
    assert!(line("redis").contains("off"), "{report}");

    let created = run(&db, &["brand", "create", "Acme"]);
    let stderr = text(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(
        !stderr.contains("INFO") && !stderr.contains("migration"),
        "a command logs warnings only: {stderr}"
    );
    assert!(text(&created.stdout).starts_with("cli_"));

    let after = run(&db, &["status"]);
    assert!(
        text(&after.stdout).contains("current"),
        "{}",
        text(&after.stdout)
    );
}

#[actix_web::test]
async fn status_exits_1_naming_what_would_stop_the_gateway() {
    let db = TestDb::fresh().await;
    let output = run(&db, &["status"]);
    assert!(output.status.success());
    let broken = crate::process::command(&db.url(), "admin-cli", "http://127.0.0.1:9")
        .env_remove("RUST_LOG")
        .env("SPIDERGATE_VAULT_KEY", "not-a-fernet-key")
        .arg("status")
        .output()
        .expect("the binary runs");
    assert_eq!(broken.status.code(), Some(1));
    let report = text(&broken.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("vault") && l.contains("FAIL")),
        "{report}"
    );
    assert!(
        text(&broken.stderr).contains("not ready: vault"),
        "{}",
        text(&broken.stderr)
    );
}
