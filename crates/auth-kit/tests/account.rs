//! The account lifecycle (verification, reset, change) on SQLite always and
//! on PostgreSQL when TEST_DATABASE_URL is set, reading the mails from a
//! real outbox folder. (The HTTP answers are tested by the templates.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::IpAddr;
use std::time::Duration;

use auth_kit::account::{
    AccountError, AccountService, AccountServiceParts, ChangePasswordRequest, EmailRequest,
    ResetPasswordRequest, VerifyEmailRequest,
};
use auth_kit::config::{EmailVerification, LoginLimits, MailLimits};
use auth_kit::extract::Lookup;
use auth_kit::limiter::MailRequestLimiter;
use auth_kit::login::{ScopeMode, TokenResponse};
use auth_kit::mail::{MailQueue, MailTransportSettings, Mailer, RetryPolicy};
use auth_kit::testing::TestDatabase;
use auth_kit::token::VerifiedAccess;
use auth_kit::{ApiError, OAuthError};
use common::{Harness, Outbox, harness_with_verification, password_grant, token_in};

const PUBLIC_URL: &str = "https://api.example.com";

struct Lifecycle {
    h: Harness,
    accounts: AccountService,
    outbox: Outbox,
}

async fn lifecycle(url: &str, verification: EmailVerification, limits: MailLimits) -> Lifecycle {
    let login_limits = LoginLimits {
        max_failures_per_username: 3,
        max_failures_per_ip: 100,
        lockout: Duration::from_secs(300),
    };
    let h = harness_with_verification(url, ScopeMode::Scoped, login_limits, verification).await;
    let outbox = Outbox::new();
    let transport = MailTransportSettings::Outbox {
        dir: outbox.dir.path().to_owned(),
    };
    let mailer = Mailer::new(&transport, "My API <no-reply@example.com>").unwrap();
    let accounts = AccountService::new(AccountServiceParts {
        logins: h.logins.clone(),
        mail: MailQueue::start(mailer, RetryPolicy::STANDARD),
        public_url: format!("{PUBLIC_URL}/"),
        reset_token_ttl: Duration::from_secs(30 * 60),
        verify_token_ttl: Duration::from_secs(48 * 3600),
        mail_requests: MailRequestLimiter::in_process(limits, h.clock.clone()),
    });
    Lifecycle {
        h,
        accounts,
        outbox,
    }
}

fn generous() -> MailLimits {
    MailLimits {
        max_per_address: 100,
        max_per_ip: 1000,
        window: Duration::from_secs(3600),
    }
}

fn signup(username: &str, email: Option<&str>) -> auth_kit::login::SignupRequest {
    serde_json::from_value(serde_json::json!({
        "username": username,
        "password": format!("password-of-{username}"),
        "email": email,
    }))
    .unwrap()
}

fn email(address: &str) -> EmailRequest {
    EmailRequest {
        email: address.to_owned(),
    }
}

fn reset(token: &str, password: &str) -> ResetPasswordRequest {
    serde_json::from_value(serde_json::json!({"token": token, "password": password})).unwrap()
}

fn verify(token: &str) -> VerifyEmailRequest {
    serde_json::from_value(serde_json::json!({"token": token})).unwrap()
}

impl Lifecycle {
    async fn login(&self, username: &str, password: &str) -> Result<TokenResponse, OAuthError> {
        let form = password_grant(username, &password.replace(' ', "+"), None);
        self.h.logins.token(form, None).await
    }

    async fn session(&self, username: &str, password: &str) -> VerifiedAccess {
        let pair = self.login(username, password).await.unwrap();
        self.h.verifier.verify(&pair.access_token).unwrap()
    }

    async fn is_live(&self, access: &VerifiedAccess) -> bool {
        matches!(
            self.h
                .store
                .user_for_access(access.user_id, access.login_id())
                .await
                .unwrap(),
            Lookup::Found(_)
        )
    }

    /// Asks for a reset mail and returns its token (the `n`-th mail to `to`).
    async fn reset_token(&self, to: &str, n: usize) -> String {
        self.accounts
            .forgot_password(&email(to), None)
            .await
            .unwrap();
        token_in(&self.outbox.nth_mail_to(to, n).await)
    }
}

fn is_invalid_token(result: Result<impl std::fmt::Debug, AccountError>) -> bool {
    matches!(result, Err(AccountError::InvalidToken))
}

#[tokio::test]
async fn reset_voids_earlier_tokens_and_every_login() {
    for db in TestDatabase::all("reset_voids_earlier_tokens_and_every_login").await {
        let l = lifecycle(db.url(), EmailVerification::Optional, generous()).await;
        let ann = l
            .accounts
            .signup(&signup("ann", Some("Ann@Example.com")), None)
            .await
            .unwrap();
        assert!(!ann.email_verified);
        let first = l.session("ann", "password-of-ann").await;
        let second = l.session("ann", "password-of-ann").await;

        // Mail 1 is the verification sent at signup; addresses match ignoring case.
        let verification = l.outbox.nth_mail_to("Ann@Example.com", 1).await;
        assert!(verification.contains("Subject: Confirm your email address"));
        let earlier = l.reset_token("ANN@example.COM", 2).await;
        let latest = l.reset_token("ann@example.com", 3).await;
        assert_ne!(earlier, latest);
        let newest = l.outbox.nth_mail_to("Ann@Example.com", 3).await;
        assert!(newest.contains("Subject: Reset your password"), "{newest}");
        assert!(
            newest.contains("From: \"My API\" <no-reply@example.com>"),
            "{newest}"
        );
        assert!(
            newest.contains(&format!("{PUBLIC_URL}/reset-password?token={latest}\r\n")),
            "the link whole on one line: {newest}"
        );
        assert_eq!(latest.len(), 43, "256 bits, base64url");

        assert!(
            is_invalid_token(
                l.accounts
                    .reset_password(&reset(&earlier, "new password 1"))
                    .await
            ),
            "{db:?}: a new reset token voids the previous one"
        );
        let weak = l.accounts.reset_password(&reset(&latest, "short")).await;
        assert!(
            matches!(&weak, Err(AccountError::Api(ApiError::Validation { field, .. })) if field == "password"),
            "{weak:?}"
        );
        l.accounts
            .reset_password(&reset(&latest, "new password 1"))
            .await
            .unwrap();
        assert!(
            is_invalid_token(
                l.accounts
                    .reset_password(&reset(&latest, "new password 2"))
                    .await
            ),
            "single use"
        );
        assert!(!l.is_live(&first).await, "{db:?}: every login revoked");
        assert!(!l.is_live(&second).await);
        assert_eq!(
            l.login("ann", "password-of-ann").await.unwrap_err().code(),
            "invalid_grant"
        );
        let after = l.session("ann", "new password 1").await;
        assert!(l.is_live(&after).await);
        let ann = l.h.store.user(ann.id).await.unwrap().unwrap();
        assert!(ann.email_verified, "a used reset link proves the address");
    }
}

#[tokio::test]
async fn verification_works_once_and_tokens_expire() {
    for db in TestDatabase::all("verification_works_once_and_tokens_expire").await {
        let l = lifecycle(db.url(), EmailVerification::Optional, generous()).await;
        l.accounts
            .signup(&signup("bob", Some("bob@example.com")), None)
            .await
            .unwrap();
        let mail = l.outbox.nth_mail_to("bob@example.com", 1).await;
        let token = token_in(&mail);
        assert!(mail.contains(&format!("{PUBLIC_URL}/verify?token={token}\r\n")));
        assert!(
            is_invalid_token(
                l.accounts
                    .reset_password(&reset(&token, "new password 1"))
                    .await
            ),
            "a verification token is no reset token"
        );
        let bob = l.accounts.verify_email(&verify(&token)).await.unwrap();
        assert!(bob.email_verified, "{db:?}");
        assert!(
            is_invalid_token(l.accounts.verify_email(&verify(&token)).await),
            "{db:?}: single use"
        );
        // Verified already: asking again mails nothing (and answers the same).
        l.accounts
            .request_verification(&email("bob@example.com"), None)
            .await
            .unwrap();

        l.accounts
            .signup(&signup("cat", Some("cat@example.com")), None)
            .await
            .unwrap();
        let stale = token_in(&l.outbox.nth_mail_to("cat@example.com", 1).await);
        l.h.clock.advance(48 * 3600);
        assert!(
            is_invalid_token(l.accounts.verify_email(&verify(&stale)).await),
            "{db:?}: expired at 48 h"
        );
        l.accounts
            .request_verification(&email("cat@example.com"), None)
            .await
            .unwrap();
        let fresh = token_in(&l.outbox.nth_mail_to("cat@example.com", 2).await);
        assert!(l.accounts.verify_email(&verify(&fresh)).await.is_ok());

        let reset_token = l.reset_token("cat@example.com", 3).await;
        l.h.clock.advance(30 * 60);
        assert!(
            is_invalid_token(
                l.accounts
                    .reset_password(&reset(&reset_token, "new password 1"))
                    .await
            ),
            "{db:?}: expired at 30 min"
        );
        assert_eq!(l.h.store.purge_expired_account_tokens().await.unwrap(), 1);
        assert_eq!(l.outbox.mails_to("bob@example.com").len(), 1, "{db:?}");
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_token_succeed_once() {
    for db in TestDatabase::all("concurrent_uses_of_one_token_succeed_once").await {
        let l = lifecycle(db.url(), EmailVerification::Optional, generous()).await;
        l.accounts
            .signup(&signup("dan", Some("dan@example.com")), None)
            .await
            .unwrap();
        let verification = token_in(&l.outbox.nth_mail_to("dan@example.com", 1).await);
        let reset_token = l.reset_token("dan@example.com", 2).await;
        let resets = (0..4).map(|i| {
            let accounts = l.accounts.clone();
            let request = reset(&reset_token, &format!("racing password {i}"));
            tokio::spawn(async move { accounts.reset_password(&request).await.is_ok() })
        });
        let verifies = (0..4).map(|_| {
            let accounts = l.accounts.clone();
            let request = verify(&verification);
            tokio::spawn(async move { accounts.verify_email(&request).await.is_ok() })
        });
        let mut won = (0, 0);
        for (r, v) in resets.zip(verifies).collect::<Vec<_>>() {
            won.0 += usize::from(r.await.unwrap());
            won.1 += usize::from(v.await.unwrap());
        }
        assert_eq!(won, (1, 1), "{db:?}");
    }
}

#[tokio::test]
async fn change_keeps_the_callers_login_and_counts_failures() {
    for db in TestDatabase::all("change_keeps_the_callers_login_and_counts_failures").await {
        let l = lifecycle(db.url(), EmailVerification::Optional, generous()).await;
        let eve = l.accounts.signup(&signup("eve", None), None).await.unwrap();
        let mine = l.session("eve", "password-of-eve").await;
        let other = l.session("eve", "password-of-eve").await;
        let change = |current: &str, new: &str| ChangePasswordRequest {
            current_password: current.to_owned(),
            new_password: new.to_owned(),
        };
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let weak = l
            .accounts
            .change_password(&eve, &mine, &change("wrong", "short"), ip)
            .await;
        assert!(
            matches!(&weak, Err(AccountError::Api(ApiError::Validation { field, .. })) if field == "new_password"),
            "{weak:?}"
        );
        l.accounts
            .change_password(
                &eve,
                &mine,
                &change("password-of-eve", "a new password"),
                ip,
            )
            .await
            .unwrap();
        assert!(l.is_live(&mine).await, "{db:?}: the caller's login stays");
        assert!(!l.is_live(&other).await, "{db:?}: the others are revoked");
        assert!(l.login("eve", "a new password").await.is_ok());

        // Wrong current passwords feed the login limiter (3 per username here).
        for _ in 0..3 {
            let wrong = l
                .accounts
                .change_password(&eve, &mine, &change("guess", "another password"), ip)
                .await;
            assert!(
                matches!(wrong, Err(AccountError::WrongPassword)),
                "{wrong:?}"
            );
        }
        let locked = l
            .accounts
            .change_password(
                &eve,
                &mine,
                &change("a new password", "another password"),
                ip,
            )
            .await;
        assert!(
            matches!(
                locked,
                Err(AccountError::Api(ApiError::TooManyRequests { .. }))
            ),
            "{locked:?}"
        );
        assert_eq!(
            l.login("eve", "a new password").await.unwrap_err().code(),
            "too_many_requests",
            "the same budget as /token"
        );
    }
}

#[tokio::test]
async fn required_verification_refuses_only_the_right_password() {
    let db = TestDatabase::sqlite();
    let l = lifecycle(db.url(), EmailVerification::Required, generous()).await;
    let no_email = l
        .accounts
        .signup(&signup("fay", None), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&no_email, ApiError::Validation { field, .. } if field == "email"),
        "{no_email:?}"
    );
    l.accounts
        .signup(&signup("fay", Some("fay@example.com")), None)
        .await
        .unwrap();
    let wrong = l.login("fay", "not her password").await.unwrap_err();
    assert_eq!(wrong.to_string(), "Incorrect username or password");
    let right = l.login("fay", "password-of-fay").await.unwrap_err();
    assert_eq!(
        (right.code(), right.to_string().as_str()),
        ("invalid_grant", "email not verified")
    );
    let token = token_in(&l.outbox.nth_mail_to("fay@example.com", 1).await);
    l.accounts.verify_email(&verify(&token)).await.unwrap();
    assert!(l.login("fay", "password-of-fay").await.is_ok());
}

#[tokio::test]
async fn mail_requests_are_limited_per_address_and_per_ip() {
    let db = TestDatabase::sqlite();
    let limits = MailLimits {
        max_per_address: 2,
        max_per_ip: 4,
        window: Duration::from_secs(3600),
    };
    let l = lifecycle(db.url(), EmailVerification::Optional, limits).await;
    let ip = Some(IpAddr::from([198, 51, 100, 7]));
    let limited = |r: Result<_, ApiError>| matches!(r, Err(ApiError::TooManyRequests { .. }));
    for _ in 0..2 {
        assert!(
            l.accounts
                .forgot_password(&email("x@example.com"), ip)
                .await
                .is_ok()
        );
    }
    // Known or not, the third request for an address in the hour is refused,
    // whichever route asks and whatever the case.
    assert!(limited(
        l.accounts
            .request_verification(&email("X@example.com"), None)
            .await
    ));
    assert!(
        l.accounts
            .forgot_password(&email("y@example.com"), ip)
            .await
            .is_ok()
    );
    assert!(
        l.accounts
            .forgot_password(&email("z@example.com"), ip)
            .await
            .is_ok()
    );
    assert!(
        limited(
            l.accounts
                .forgot_password(&email("w@example.com"), ip)
                .await
        ),
        "the IP's budget is spent"
    );
    assert!(
        l.accounts
            .forgot_password(&email("w@example.com"), None)
            .await
            .is_ok()
    );
    l.h.clock.advance(3600);
    assert!(
        l.accounts
            .forgot_password(&email("x@example.com"), ip)
            .await
            .is_ok()
    );
    let malformed = l
        .accounts
        .forgot_password(&email("not-an-address"), ip)
        .await;
    assert!(
        matches!(&malformed, Err(ApiError::Validation { field, .. }) if field == "email"),
        "{malformed:?}"
    );
}

#[tokio::test]
async fn junk_tokens_are_invalid() {
    let db = TestDatabase::sqlite();
    let l = lifecycle(db.url(), EmailVerification::Optional, generous()).await;
    l.accounts
        .signup(&signup("gil", Some("gil@example.com")), None)
        .await
        .unwrap();
    let gils = token_in(&l.outbox.nth_mail_to("gil@example.com", 1).await);
    for junk in [
        String::new(),
        "   ".to_owned(),
        "x".repeat(10_000),
        "not base64 at all: ☃ %00 '; DROP TABLE users; --".to_owned(),
        gils[..42].to_owned(),
        format!("{gils}x"),
    ] {
        assert!(
            is_invalid_token(l.accounts.verify_email(&verify(&junk)).await),
            "{junk:.40}"
        );
        assert!(
            is_invalid_token(
                l.accounts
                    .reset_password(&reset(&junk, "new password 1"))
                    .await
            ),
            "{junk:.40}"
        );
    }
    // Unknown addresses and disabled users get no mail, and the same answer.
    let off = l
        .accounts
        .signup(&signup("off", Some("off@example.com")), None)
        .await
        .unwrap();
    l.outbox.nth_mail_to("off@example.com", 1).await;
    l.h.store
        .update_user(
            off.id,
            &auth_kit::store::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for nobody in ["nobody@example.com", "off@example.com"] {
        assert!(
            l.accounts
                .forgot_password(&email(nobody), None)
                .await
                .is_ok()
        );
    }
    // A mail asked for after those arrives; theirs never do.
    l.reset_token("gil@example.com", 2).await;
    assert!(l.outbox.mails_to("nobody@example.com").is_empty());
    assert_eq!(l.outbox.mails_to("off@example.com").len(), 1);
}
