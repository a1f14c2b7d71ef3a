//! `InviteMailer`: sends the outbox (emails over SMTP, alert webhooks over HTTP), retrying with back-off, resuming after restarts.
//!
//! The outbox table is the queue: the actor only decides *when* to look at it (at start, on
//! `Wake`, and every `mail.poll_secs`), and one drain runs at a time. Each email is claimed
//! (leased) before it is sent, so mailers of several replicas never send one twice. A failed send is
//! rescheduled (1 s, 2 s, 4 s … up to `mail.retry_max_secs`), never dropped. Times come from the
//! app's `Clock`, the same one that stamps the outbox rows, so a moved clock never strands mail.

use super::store::{self, Mail};
use crate::clock::Clock;
use crate::config::{AlertsConfig, MailConfig, MailTls};
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sea_orm::DatabaseConnection;
use std::time::Duration;

/// New mail is waiting: look at the outbox now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// The server is stopping: look at the outbox no more (a drain under way finishes its email).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// A drain finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Drained;

pub struct InviteMailer {
    db: DatabaseConnection,
    clock: Clock,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    poll: Duration,
    retry_max: Duration,
    draining: bool,
    again: bool,
    /// Alert webhooks ride the same outbox.
    http: reqwest::Client,
    alerts: std::sync::Arc<AlertsConfig>,
}

impl InviteMailer {
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.again = true;
            return;
        }
        self.draining = true;
        let (db, clock, transport, from, retry_max) = (
            self.db.clone(),
            self.clock.clone(),
            self.transport.clone(),
            self.from.clone(),
            self.retry_max,
        );
        let (http, alerts) = (self.http.clone(), self.alerts.clone());
        let me = ctx.address();
        actix::spawn(async move {
            deliver_due(&db, &clock, &transport, &from, retry_max, (&http, &alerts)).await;
            me.do_send(Drained);
        });
    }
}

impl Actor for InviteMailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.drain(ctx);
        ctx.run_interval(self.poll, |mailer, ctx| mailer.drain(ctx));
    }
}

impl Handler<Wake> for InviteMailer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

impl Handler<Stop> for InviteMailer {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Drained> for InviteMailer {
    type Result = ();

    fn handle(&mut self, _: Drained, ctx: &mut Context<Self>) {
        self.draining = false;
        if std::mem::take(&mut self.again) {
            self.drain(ctx);
        }
    }
}

/// How long a claimed email is left to its sender before another mailer may try it: longer than
/// one SMTP conversation (10 s timeout), so a crash mid-send delays the email but never loses it.
const SEND_LEASE_SECS: i64 = 60;

/// Sends every due email once; failures are rescheduled.
async fn deliver_due(
    db: &DatabaseConnection,
    clock: &Clock,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    retry_max: Duration,
    webhooks: (&reqwest::Client, &AlertsConfig),
) {
    loop {
        let due = match store::due_mail(db, clock.now(), 20).await {
            Ok(due) if !due.is_empty() => due,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!("reading the outbox: {err}");
                return;
            }
        };
        for pending in due {
            // Another mailer (a second replica, or a process shutting down) may be on this row.
            let lease = clock.now() + chrono::Duration::seconds(SEND_LEASE_SECS);
            match store::claim_mail(db, pending.id, clock.now(), lease).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(outbox_id = pending.id, "claiming mail: {err}");
                    return;
                }
            }
            let result = match pending.channel.as_str() {
                "webhook" => {
                    let mail = &pending.mail;
                    let now = clock.now().timestamp();
                    let (http, config) = webhooks;
                    crate::alerts::webhook::post(
                        http,
                        config,
                        pending.id,
                        &mail.subject,
                        &mail.text,
                        now,
                    )
                    .await
                }
                _ => match compose(from, &pending.mail) {
                    Ok(message) => transport
                        .send(message)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err),
                },
            };
            let written = match result {
                Ok(()) => store::mark_sent(db, pending.id, clock.now()).await,
                Err(err) => {
                    let attempts = pending.attempts + 1;
                    let wait = Duration::from_secs(1u64 << attempts.clamp(0, 16)).min(retry_max);
                    tracing::warn!(
                        outbox_id = pending.id,
                        attempts,
                        "sending mail failed, retrying in {wait:?}: {err}"
                    );
                    let next = clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    store::mark_failed(db, pending.id, attempts, next, &err).await
                }
            };
            if let Err(err) = written {
                tracing::warn!(outbox_id = pending.id, "updating the outbox: {err}");
                return;
            }
        }
    }
}

fn compose(from: &Mailbox, mail: &Mail) -> Result<lettre::Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| e.to_string())
}

/// The handle the rest of the app uses.
#[derive(Clone)]
pub struct Mailer {
    actor: Addr<InviteMailer>,
}

impl Mailer {
    pub fn start(
        config: &MailConfig,
        alerts: &AlertsConfig,
        http: reqwest::Client,
        db: DatabaseConnection,
        clock: Clock,
    ) -> anyhow::Result<Mailer> {
        let builder = match config.tls {
            MailTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
            }
            MailTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.smtp_host)?
            }
            MailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.smtp_host)?,
        };
        let mut builder = builder
            .port(config.smtp_port)
            .timeout(Some(Duration::from_secs(10)));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.expose().to_owned(),
            ));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid config at `mail.from`: {e}"))?;
        let actor = InviteMailer {
            db,
            clock,
            transport: builder.build(),
            from,
            poll: Duration::from_secs(config.poll_secs.max(1)),
            retry_max: Duration::from_secs(config.retry_max_secs.max(1)),
            draining: false,
            again: false,
            http,
            alerts: std::sync::Arc::new(alerts.clone()),
        }
        .start();
        Ok(Mailer { actor })
    }

    /// New mail is in the outbox. Always delivered; the mail itself is already safe in the table.
    pub fn wake(&self) {
        self.actor.do_send(Wake);
    }

    /// Stops looking at the outbox (at shutdown); unsent mail waits there for the next start.
    pub fn stop(&self) {
        self.actor.do_send(Stop);
    }
}
