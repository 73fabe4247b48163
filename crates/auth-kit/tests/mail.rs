//! Mail over a real SMTP conversation: a small SMTP server on loopback,
//! started by each test, speaking enough of RFC 5321 (EHLO, AUTH PLAIN,
//! MAIL, RCPT, DATA, NOOP, QUIT) to receive what lettre sends.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_kit::config::{Environment, mail_transport};
use auth_kit::mail::{
    Mail, MailQueue, MailTransportSettings, Mailer, RetryPolicy, SmtpSecurity, check_smtp,
};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server saw of one message.
#[derive(Debug, Clone, Default)]
struct Received {
    auth: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
    /// The code it answered the message with.
    answer: u16,
}

/// An SMTP server on 127.0.0.1 that refuses every message to
/// `refused@example.com` for good (550) and answers the others with the
/// next code of `answers` (250 when they run out).
#[derive(Clone)]
struct SmtpSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    async fn start(answers: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let sink = received.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(session(socket, sink.clone(), answers.clone()));
            }
        });
        Self { addr, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the SMTP sink did not get {n} messages within 5 s");
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    sink: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut current = Received::default();
    let mut say = async |text: &str| write.write_all(text.as_bytes()).await.unwrap();
    say("220 sink.test ESMTP ready\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            say("250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n").await;
        } else if let Some(encoded) = line.strip_prefix("AUTH PLAIN ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .unwrap();
            current.auth = Some(String::from_utf8(decoded).unwrap());
            say("235 2.7.0 authenticated\r\n").await;
        } else if upper.starts_with("MAIL FROM:") {
            current.from = line[10..].trim().to_owned();
            say("250 2.1.0 ok\r\n").await;
        } else if upper.starts_with("RCPT TO:") {
            current.to.push(line[8..].trim().to_owned());
            say("250 2.1.5 ok\r\n").await;
        } else if upper == "DATA" {
            say("354 end with <CRLF>.<CRLF>\r\n").await;
            while let Ok(Some(data)) = lines.next_line().await {
                if data == "." {
                    break;
                }
                current.data.push_str(&data);
                current.data.push('\n');
            }
            let code = if current.to.iter().any(|t| t == "<refused@example.com>") {
                550
            } else {
                answers.lock().unwrap().pop_front().unwrap_or(250)
            };
            current.answer = code;
            let auth = current.auth.clone();
            sink.lock().unwrap().push(std::mem::take(&mut current));
            current.auth = auth;
            say(&format!("{code} message {code}\r\n")).await;
        } else if upper == "NOOP" || upper == "RSET" {
            say("250 2.0.0 ok\r\n").await;
        } else if upper == "QUIT" {
            say("221 2.0.0 bye\r\n").await;
            break;
        } else {
            say("502 5.5.2 not implemented\r\n").await;
        }
    }
}

fn mail(to: &str, token: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "Reset your password".to_owned(),
        text: format!(
            "Open https://api.example.com/reset-password?token={token}\n\ntoken: {token}\n"
        ),
    }
}

/// MAIL_URL as an operator writes it, parsed by the configuration.
fn transport(url: &str) -> MailTransportSettings {
    mail_transport(&Environment::from_pairs([("MAIL_URL", url)])).unwrap()
}

#[tokio::test]
async fn delivers_through_a_real_smtp_conversation() {
    let sink = SmtpSink::start(&[]).await;
    let port = sink.addr.port();
    let settings = transport(&format!("smtp://ann%40example.com:p%40ss@127.0.0.1:{port}"));
    let MailTransportSettings::Smtp(smtp) = &settings else {
        panic!("{settings:?}");
    };
    assert_eq!(smtp.security, SmtpSecurity::Plaintext, "loopback: no TLS");
    let mailer = Mailer::new(&settings, "My API <no-reply@example.com>").unwrap();
    let delivered = mailer
        .send(&mail("bob@example.com", "tok-1"))
        .await
        .unwrap();
    assert_eq!(
        delivered,
        format!("sent over SMTP to 127.0.0.1:{port} (no encryption, with credentials)")
    );
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let message = &got[0];
    assert_eq!(message.auth.as_deref(), Some("\0ann@example.com\0p@ss"));
    assert_eq!(message.from, "<no-reply@example.com>");
    assert_eq!(message.to, ["<bob@example.com>"]);
    assert!(
        message.data.contains("Subject: Reset your password\n"),
        "{}",
        message.data
    );
    assert!(message.data.contains("Content-Transfer-Encoding: 7bit\n"));
    assert!(
        message
            .data
            .contains("\nOpen https://api.example.com/reset-password?token=tok-1\n"),
        "{}",
        message.data
    );
    assert!(message.data.contains("\ntoken: tok-1\n"));
    assert!(check_smtp(smtp, Duration::from_secs(5)).await.is_ok());

    // STARTTLS required (any host but loopback, or ?tls=required): a server
    // that does not offer it gets nothing, rather than the mail in clear.
    let settings = transport(&format!("smtp://ann:p%40ss@localhost:{port}?tls=required"));
    let MailTransportSettings::Smtp(required) = &settings else {
        panic!("{settings:?}");
    };
    assert_eq!(required.security, SmtpSecurity::StartTls);
    let before = sink.received().len();
    let mailer = Mailer::new(&settings, "no-reply@example.com").unwrap();
    let refused = mailer.send(&mail("bob@example.com", "tok-2")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(check_smtp(required, Duration::from_secs(5)).await.is_err());
    assert_eq!(sink.received().len(), before, "nothing was sent in clear");
}

#[tokio::test]
async fn transient_failures_are_retried_permanent_ones_are_not() {
    let sink = SmtpSink::start(&[451, 451]).await;
    let settings = transport(&format!("smtp://127.0.0.1:{}", sink.addr.port()));
    let mailer = Mailer::new(&settings, "no-reply@example.com").unwrap();
    let queue = MailQueue::start(
        mailer,
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(20),
        },
    );
    assert!(queue.submit("test", async { Some(mail("a@example.com", "t1")) }));
    let got = sink.wait_for(3).await;
    let answers: Vec<u16> = got.iter().map(|r| r.answer).collect();
    assert_eq!(answers, [451, 451, 250], "retried after 451, twice");
    assert!(queue.submit("test", async { Some(mail("refused@example.com", "t2")) }));
    assert!(
        queue.submit("test", async { None }),
        "nothing to send is fine"
    );
    assert!(queue.submit("test", async { Some(mail("c@example.com", "t3")) }));
    sink.wait_for(5).await;
    // Three retries would come 20 ms and 80 ms later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused: Vec<u16> = sink
        .received()
        .iter()
        .filter(|r| r.to == ["<refused@example.com>"])
        .map(|r| r.answer)
        .collect();
    assert_eq!(refused, [550], "a permanent refusal is not retried");
}

#[tokio::test]
async fn smtp_checks_say_what_is_wrong_within_the_timeout() {
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let MailTransportSettings::Smtp(refused) = transport(&format!("smtp://127.0.0.1:{port}"))
    else {
        unreachable!()
    };
    let e = check_smtp(&refused, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(!e.is_empty());

    // A server that accepts and never speaks.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let MailTransportSettings::Smtp(mute) =
        transport(&format!("smtp://user:hunter2@127.0.0.1:{port}"))
    else {
        unreachable!()
    };
    let started = std::time::Instant::now();
    let e = check_smtp(&mute, Duration::from_secs(1)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
