//! The stub's mail: each message is rendered as RFC 5322 text, kept in
//! memory and, with an outbox folder, written there as one `.eml` file.
//! Nothing is ever sent.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::api::lock;

/// What a mail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailKind {
    /// Signup confirmation (`type=signup`), with autoconfirm off.
    Confirmation,
    /// Password recovery (`type=recovery`), from `POST /recover`.
    Recovery,
}

impl MailKind {
    /// The `type` its link and `POST /verify` use.
    pub fn verify_type(self) -> &'static str {
        match self {
            MailKind::Confirmation => "signup",
            MailKind::Recovery => "recovery",
        }
    }

    /// Upstream's default subject.
    fn subject(self) -> &'static str {
        match self {
            MailKind::Confirmation => "Confirm your email address",
            MailKind::Recovery => "Reset your password",
        }
    }

    /// Upstream's default text, before and after the link.
    fn text(self) -> (&'static str, &'static str) {
        match self {
            MailKind::Confirmation => (
                "Follow the link below to confirm this email address and finish signing up.",
                "",
            ),
            MailKind::Recovery => (
                "We received a request to reset your password. Follow the link below to choose a new one.",
                "If you didn't request this, you can safely ignore this email.",
            ),
        }
    }
}

/// A mail the stub wrote. Its `Debug` leaves the message (and its token) out.
#[derive(Clone)]
pub struct SentMail {
    /// The recipient.
    pub to: String,
    /// Confirmation or recovery.
    pub kind: MailKind,
    /// The whole message, RFC 5322 (CRLF line ends), as written.
    pub message: String,
    /// The `.eml` file, when the stub has an outbox folder.
    pub path: Option<PathBuf>,
}

impl fmt::Debug for SentMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentMail")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SentMail {
    /// The one-time code (upstream's `{{ .Token }}`): the `token: ` line,
    /// used with the email at `POST /verify`.
    pub fn token(&self) -> Option<&str> {
        self.line_value("token: ")
    }

    /// The token hash (upstream's `{{ .TokenHash }}`): the `token_hash: `
    /// line, used alone at `POST /verify` and in the link.
    pub fn token_hash(&self) -> Option<&str> {
        self.line_value("token_hash: ")
    }

    /// The link to `GET /verify`.
    pub fn link(&self) -> Option<&str> {
        self.message
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("http://") || line.starts_with("https://"))
    }

    fn line_value(&self, prefix: &str) -> Option<&str> {
        self.message
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    }
}

/// What goes into one mail.
#[derive(Debug)]
pub(crate) struct Letter<'a> {
    pub(crate) to: &'a str,
    pub(crate) kind: MailKind,
    pub(crate) link: &'a str,
    pub(crate) otp: &'a str,
    pub(crate) token_hash: &'a str,
}

/// How many mails the stub remembers (the oldest are forgotten first).
const REMEMBERED: usize = 256;
/// The sender of every mail.
const FROM: &str = "gotrue-stub <no-reply@gotrue-stub.invalid>";

/// Where mails go.
#[derive(Debug)]
pub(crate) struct Outbox {
    dir: Option<PathBuf>,
    sent: Mutex<VecDeque<SentMail>>,
}

impl Outbox {
    /// An outbox, creating `dir` (owner-only on Unix) when there is one.
    pub(crate) fn new(dir: Option<PathBuf>) -> io::Result<Self> {
        if let Some(dir) = &dir {
            create_private_dir(dir)?;
        }
        Ok(Self {
            dir,
            sent: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Renders `letter`, writes it to the folder (if any) and remembers it.
    pub(crate) async fn deliver(&self, letter: &Letter<'_>) -> io::Result<SentMail> {
        if !is_header_safe(letter.to) || !is_header_safe(letter.link) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address or link cannot go into a mail header or line",
            ));
        }
        let now = OffsetDateTime::now_utc();
        let id = hex::encode(auth_kit::random::bytes::<8>());
        let message = render(letter, now, &id);
        let path = match &self.dir {
            Some(dir) => {
                let name = format!(
                    "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z-{}-{id}.eml",
                    now.year(),
                    u8::from(now.month()),
                    now.day(),
                    now.hour(),
                    now.minute(),
                    now.second(),
                    now.nanosecond(),
                    letter.kind.verify_type(),
                );
                let path = dir.join(name);
                let (target, bytes) = (path.clone(), message.clone().into_bytes());
                tokio::task::spawn_blocking(move || write_new_file(&target, &bytes))
                    .await
                    .map_err(io::Error::other)??;
                Some(path)
            }
            None => None,
        };
        let mail = SentMail {
            to: letter.to.to_owned(),
            kind: letter.kind,
            message,
            path,
        };
        let mut sent = lock(&self.sent);
        if sent.len() == REMEMBERED {
            sent.pop_front();
        }
        sent.push_back(mail.clone());
        Ok(mail)
    }

    /// Every remembered mail, oldest first.
    pub(crate) fn sent(&self) -> Vec<SentMail> {
        lock(&self.sent).iter().cloned().collect()
    }
}

/// Printable ASCII only: nothing that could end a header or a line.
fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 900 && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn render(letter: &Letter<'_>, now: OffsetDateTime, id: &str) -> String {
    let date = now
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned());
    let (before, after) = letter.kind.text();
    let mut lines = vec![
        format!("From: {FROM}"),
        format!("To: {}", letter.to),
        format!("Subject: {}", letter.kind.subject()),
        format!("Date: {date}"),
        format!("Message-ID: <{id}@gotrue-stub.invalid>"),
        "MIME-Version: 1.0".to_owned(),
        "Content-Type: text/plain; charset=us-ascii".to_owned(),
        "Content-Transfer-Encoding: 7bit".to_owned(),
        "X-Gotrue-Stub: written by an offline stand-in for Supabase Auth; never sent".to_owned(),
        String::new(),
        before.to_owned(),
        String::new(),
        letter.link.to_owned(),
        String::new(),
        format!(
            "Or verify with this code and your email address (type {}):",
            letter.kind.verify_type()
        ),
        format!("token: {}", letter.otp),
        format!("token_hash: {}", letter.token_hash),
    ];
    if !after.is_empty() {
        lines.extend([String::new(), after.to_owned()]);
    }
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

/// Writes `bytes` to a new file at `path`, all or nothing: a hidden
/// temporary file in the same folder, renamed once complete. Owner-only on
/// Unix: the mail holds a live token.
fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Best effort: a leftover temporary file is only clutter.
            let _ = fs::remove_file(&temporary);
            Err(e)
        }
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn letter() -> Letter<'static> {
        Letter {
            to: "ann@example.com",
            kind: MailKind::Recovery,
            link: "http://127.0.0.1:9999/auth/v1/verify?token=abc&type=recovery&redirect_to=x",
            otp: "012345",
            token_hash: "abc",
        }
    }

    #[test]
    fn rendered_message_is_rfc5322_with_the_token_lines() {
        let text = render(&letter(), OffsetDateTime::UNIX_EPOCH, "00ff");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("\r\nTo: ann@example.com\r\n"), "{head}");
        assert!(head.contains("\r\nSubject: Reset your password\r\n"));
        assert!(head.contains("\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
        assert!(
            text.split("\r\n")
                .all(|l| !l.contains('\n') && l.len() < 998)
        );
        assert!(body.contains("\r\ntoken: 012345\r\n"), "{body}");
        let mail = SentMail {
            to: "ann@example.com".into(),
            kind: MailKind::Recovery,
            message: text.clone(),
            path: None,
        };
        assert_eq!(mail.token(), Some("012345"));
        assert_eq!(mail.token_hash(), Some("abc"));
        assert_eq!(mail.link(), Some(letter().link));
        assert!(!format!("{mail:?}").contains("012345"));
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(is_header_safe("ann@example.com"));
        assert!(!is_header_safe("ann@example.com\r\nBcc: eve@example.com"));
        assert!(!is_header_safe(""));
        assert!(!is_header_safe("ánn@example.com"));
    }
}
