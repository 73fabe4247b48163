//! Mail: password-reset and verification messages, written to an outbox
//! folder or sent over SMTP, always off the request path.
//!
//! - [`Mailer`] delivers one [`Mail`] through the transport MAIL_URL chose:
//!   `file://DIR` writes it as an RFC 5322 `.eml` file into `DIR` (the
//!   default, `./outbox`: nothing to install to try a service);
//!   `smtp://` and `smtps://` send it through [lettre], STARTTLS or
//!   implicit TLS on rustls.
//! - [`MailQueue`] is what request handlers use: a bounded queue in front of
//!   a worker task. A job is a future that prepares the mail (looks the
//!   user up, stores a token) and may decide there is nothing to send, so a
//!   handler does the same work whether or not an account exists. Delivery
//!   is retried with backoff; failures are logged (never a message's body:
//!   it carries a token) and never reach the caller; a full queue drops the
//!   job with a log line instead of making a request wait.
//!
//! The outbox is written as lettre's own `FileTransport` would, but each
//! file is created private (mode 0600, in a 0700 folder: the mails hold
//! live tokens) and appears whole (written aside, then renamed).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use auth_kit::mail::{Mail, MailQueue, Mailer, MailTransportSettings, RetryPolicy};
//!
//! let transport = MailTransportSettings::Outbox { dir: "./outbox".into() };
//! let mailer = Mailer::new(&transport, "no-reply@example.com")?;
//! let queue = MailQueue::start(mailer, RetryPolicy::STANDARD);
//! queue.submit("welcome", async {
//!     Some(Mail {
//!         to: "ann@example.com".to_owned(),
//!         subject: "Welcome".to_owned(),
//!         text: "Hello Ann\n".to_owned(),
//!     })
//! });
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, MIME_VERSION_1_0};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncTransport as _, Tokio1Executor};
use tokio::sync::{Semaphore, mpsc};
use zeroize::Zeroizing;

/// Where mail goes (MAIL_URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransportSettings {
    /// `file://DIR`: each message becomes one `.eml` file in `DIR`.
    Outbox {
        /// The folder (relative paths: to the working directory).
        dir: PathBuf,
    },
    /// `smtp://` or `smtps://`: sent to a mail server.
    Smtp(SmtpSettings),
}

impl MailTransportSettings {
    /// For logs and `cargo auth validate`: where mail goes, never a password.
    pub fn describe(&self) -> String {
        match self {
            MailTransportSettings::Outbox { dir } => format!(
                "written as .eml files to {} (nothing is sent)",
                dir.display()
            ),
            MailTransportSettings::Smtp(smtp) => smtp.describe(),
        }
    }
}

/// An SMTP server and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// AUTH credentials, if the server wants them.
    pub credentials: Option<SmtpCredentials>,
}

impl SmtpSettings {
    /// `smtp.example.com:587 (STARTTLS, with credentials)`: never the password.
    pub fn describe(&self) -> String {
        let security = match self.security {
            SmtpSecurity::ImplicitTls => "TLS",
            SmtpSecurity::StartTls => "STARTTLS",
            SmtpSecurity::Plaintext => "no encryption",
        };
        let auth = if self.credentials.is_some() {
            "with credentials"
        } else {
            "without credentials"
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "sent over SMTP to {host}:{} ({security}, {auth})",
            self.port
        )
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (usually port 465).
    ImplicitTls,
    /// `smtp://`: STARTTLS, required (usually port 587); the connection
    /// fails rather than continue unencrypted.
    StartTls,
    /// `smtp://` to a loopback host, or with `?tls=none`: no encryption.
    Plaintext,
}

/// SMTP AUTH credentials. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One plain-text message. `Debug` hides the text: it carries a token.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The body, plain text.
    pub text: String,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A mailer could not be set up (at start-up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailerError {
    /// MAIL_FROM is not an address (`Name <addr@example.com>` or `addr@example.com`).
    #[error("MAIL_FROM is not a valid address")]
    From,
    /// The outbox folder cannot be created.
    #[error("the mail outbox {dir} cannot be created ({source})")]
    Outbox {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS cannot be set up for the SMTP server.
    #[error("TLS for the SMTP server cannot be set up ({0})")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// One delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message could not be built (say, the recipient's address is not
    /// one lettre accepts). Retrying cannot help.
    #[error("the message cannot be built: {0}")]
    Message(String),
    /// Writing to the outbox failed.
    #[error("the outbox cannot be written: {0}")]
    Outbox(#[source] std::io::Error),
    /// The SMTP server refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
}

impl SendError {
    /// Whether a retry cannot help (a malformed message, a 5xx refusal).
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::Message(_) => true,
            SendError::Outbox(_) => false,
            SendError::Smtp(e) => e.is_permanent(),
        }
    }
}

/// Sends one message at a time through the configured transport.
pub struct Mailer {
    from: Mailbox,
    /// The domain of Message-ID headers: MAIL_FROM's.
    id_domain: String,
    transport: Transport,
}

enum Transport {
    Outbox(PathBuf),
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>, String),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match &self.transport {
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
            Transport::Smtp(_, described) => described.clone(),
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("transport", &transport)
            .finish()
    }
}

/// How long one SMTP exchange may take before it counts as failed.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Mailer {
    /// A mailer sending as `from` (MAIL_FROM). Creates the outbox folder
    /// (private to the service's user) or prepares TLS for the SMTP server;
    /// no connection is made yet.
    pub fn new(transport: &MailTransportSettings, from: &str) -> Result<Self, MailerError> {
        let from: Mailbox = from.trim().parse().map_err(|_| MailerError::From)?;
        let id_domain = from.email.domain().to_owned();
        let transport = match transport {
            MailTransportSettings::Outbox { dir } => {
                create_private_dir(dir).map_err(|source| MailerError::Outbox {
                    dir: dir.clone(),
                    source,
                })?;
                Transport::Outbox(dir.clone())
            }
            MailTransportSettings::Smtp(smtp) => Transport::Smtp(
                Box::new(smtp_transport(smtp, SMTP_TIMEOUT).map_err(MailerError::Tls)?),
                smtp.describe(),
            ),
        };
        Ok(Self {
            from,
            id_domain,
            transport,
        })
    }

    /// Delivers `mail` once; says where it went (an outbox file, a server).
    pub async fn send(&self, mail: &Mail) -> Result<String, SendError> {
        let message = self.message(mail)?;
        match &self.transport {
            Transport::Outbox(dir) => {
                let dir = dir.clone();
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                    .await
                    .map_err(|e| SendError::Outbox(std::io::Error::other(e)))?
                    .map(|path| path.display().to_string())
                    .map_err(SendError::Outbox)
            }
            Transport::Smtp(smtp, described) => {
                smtp.send(message).await.map_err(SendError::Smtp)?;
                Ok(described.clone())
            }
        }
    }

    fn message(&self, mail: &Mail) -> Result<Message, SendError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| SendError::Message("the recipient's address is not valid".to_owned()))?;
        let id = format!(
            "<{}@{}>",
            hex::encode(crate::random::bytes::<16>()),
            self.id_domain
        );
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .message_id(Some(id))
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(&mail.text))
            .map_err(|e| SendError::Message(e.to_string()))
    }
}

/// The text as 7bit when it allows (ASCII, no line over RFC 5322's 998
/// characters), so a link and the `token:` line stay intact in the raw
/// message; lettre alone picks quoted-printable for any line over 76
/// characters, which breaks a long link across lines and writes its `=` as
/// `=3D`. Anything else gets lettre's choice.
fn plain_body(text: &str) -> Body {
    let seven_bit = text.is_ascii()
        && !text.contains(['\0', '\r'])
        && text.split('\n').all(|line| line.len() <= 998);
    if seven_bit {
        let crlf = text.replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

/// Connects to the SMTP server, says hello, negotiates TLS and logs in as
/// the service would, then says goodbye; within `timeout`
/// (`cargo auth validate`). The error is one line without secrets.
pub async fn check_smtp(settings: &SmtpSettings, timeout: Duration) -> Result<(), String> {
    let transport = smtp_transport(settings, timeout).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, transport.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("the server did not answer NOOP".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

fn smtp_transport(
    settings: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let tls = match settings.security {
        SmtpSecurity::ImplicitTls => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
        SmtpSecurity::StartTls => Tls::Required(TlsParameters::new(settings.host.clone())?),
        SmtpSecurity::Plaintext => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(c) = &settings.credentials {
        builder = builder.credentials(Credentials::new(
            c.username.clone(),
            c.password.as_str().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// Creates `dir` (and its parents) readable by its owner only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` as a new `.eml` file in `dir`: aside first, then renamed,
/// so a reader never sees half a message. Names sort by time.
fn write_eml(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!(
        "{millis:015}-{}.eml",
        hex::encode(crate::random::bytes::<6>())
    );
    let partial = dir.join(format!(".{name}.partial"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let path = dir.join(name);
    if let Err(e) = written.and_then(|()| std::fs::rename(&partial, &path)) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(path)
}

/// How often, and how patiently, a delivery is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; each later wait is four times longer.
    pub first_backoff: Duration,
}

impl RetryPolicy {
    /// 4 tries, waiting 2 s, 8 s and 32 s in between: a mail server that
    /// restarts or greylists briefly still gets the mail, a dead one costs
    /// about 42 s of one delivery slot.
    pub const STANDARD: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_backoff: Duration::from_secs(2),
    };
}

/// Jobs waiting in a [`MailQueue`] before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 256;
/// Jobs a [`MailQueue`] prepares and delivers at the same time.
pub const CONCURRENT_DELIVERIES: usize = 4;

type Job = (
    &'static str,
    Pin<Box<dyn Future<Output = Option<Mail>> + Send>>,
);

/// A bounded queue in front of a worker task that prepares and delivers
/// mail. Cheap to clone.
#[derive(Clone)]
pub struct MailQueue {
    jobs: mpsc::Sender<Job>,
    transport: Arc<str>,
}

impl fmt::Debug for MailQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailQueue")
            .field("transport", &self.transport)
            .field("free", &self.jobs.capacity())
            .finish()
    }
}

impl MailQueue {
    /// Starts the worker on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(mailer: Mailer, retry: RetryPolicy) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let transport: Arc<str> = format!("{mailer:?}").into();
        tokio::spawn(work(Arc::new(mailer), queue, retry));
        Self { jobs, transport }
    }

    /// Queues a job without waiting: `prepare` runs on the worker and
    /// returns the mail to deliver, or `None` for nothing to send. `kind`
    /// names the job in logs. `false` when the queue is full (the job is
    /// dropped and logged) or the worker has stopped.
    pub fn submit(
        &self,
        kind: &'static str,
        prepare: impl Future<Output = Option<Mail>> + Send + 'static,
    ) -> bool {
        match self.jobs.try_send((kind, Box::pin(prepare))) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    kind,
                    capacity = QUEUE_CAPACITY,
                    "the mail queue is full; a mail was dropped"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(kind, "the mail worker has stopped; a mail was dropped");
                false
            }
        }
    }
}

async fn work(mailer: Arc<Mailer>, mut queue: mpsc::Receiver<Job>, retry: RetryPolicy) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some((kind, prepare)) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mailer = mailer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(mail) = prepare.await {
                deliver(&mailer, kind, &mail, retry).await;
            }
        });
    }
}

/// Tries `mail` up to `retry.attempts` times; every outcome is logged,
/// never the body.
async fn deliver(mailer: &Mailer, kind: &'static str, mail: &Mail, retry: RetryPolicy) {
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.first_backoff;
    for attempt in 1..=attempts {
        match mailer.send(mail).await {
            Ok(to) => {
                tracing::info!(kind, attempt, to = %to, "mail delivered");
                return;
            }
            Err(e) if e.is_permanent() || attempt == attempts => {
                tracing::error!(kind, attempt, error = %e, "mail could not be delivered; it is dropped");
                return;
            }
            Err(e) => {
                tracing::warn!(kind, attempt, error = %e, retry_in_seconds = backoff.as_secs(), "mail delivery failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_show_passwords() {
        let smtp = SmtpSettings {
            host: "::1".to_owned(),
            port: 2525,
            security: SmtpSecurity::Plaintext,
            credentials: Some(SmtpCredentials {
                username: "ann".to_owned(),
                password: Zeroizing::new("hunter2".to_owned()),
            }),
        };
        let described = MailTransportSettings::Smtp(smtp.clone()).describe();
        assert_eq!(
            described,
            "sent over SMTP to [::1]:2525 (no encryption, with credentials)"
        );
        assert!(!format!("{smtp:?}").contains("hunter2"));
        let mail = Mail {
            to: "a@example.com".to_owned(),
            subject: "s".to_owned(),
            text: "token: secret-token".to_owned(),
        };
        assert!(!format!("{mail:?}").contains("secret-token"));
    }

    #[test]
    fn long_ascii_lines_stay_whole() {
        let link = format!(
            "https://example.com/reset-password?token={}",
            "x".repeat(43)
        );
        let body = plain_body(&format!("Open:\n\n{link}\n"));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(body.as_ref(), format!("Open:\r\n\r\n{link}\r\n").as_bytes());
        // Not ASCII: lettre encodes it (quoted-printable or base64).
        assert_ne!(
            plain_body("Grüße\n").encoding(),
            ContentTransferEncoding::SevenBit
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let transport = MailTransportSettings::Outbox {
            dir: dir.path().to_owned(),
        };
        let mailer = Mailer::new(&transport, "no-reply@example.com").unwrap();
        let queue = MailQueue::start(mailer, RetryPolicy::STANDARD);
        // Jobs that never finish hold every delivery slot, then fill the queue.
        let mut accepted = 0;
        while queue.submit("stuck", std::future::pending()) {
            accepted += 1;
            assert!(accepted <= QUEUE_CAPACITY + CONCURRENT_DELIVERIES + 1);
            tokio::task::yield_now().await;
        }
        assert!(accepted >= QUEUE_CAPACITY, "{accepted}");
        assert!(
            !queue.submit("more", async { None }),
            "still full, answered at once"
        );
    }

    #[test]
    fn outbox_files_are_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("nested/outbox");
        create_private_dir(&outbox).unwrap();
        let a = write_eml(&outbox, b"first").unwrap();
        let b = write_eml(&outbox, b"second").unwrap();
        assert_ne!(a, b);
        let names: Vec<String> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no partial files left: {names:?}");
        assert!(names.iter().all(|n| n.ends_with(".eml")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&outbox), 0o700);
            assert_eq!(mode(&a), 0o600);
        }
    }
}
