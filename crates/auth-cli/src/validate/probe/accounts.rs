//! The account probes: signing up a throwaway user, the first login, who
//! GET /users/me says it is, forgot-password not telling who has an
//! account, and logout ending the login.

use anyhow::Result;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::session::{Session, describe_token_answer, session_of, token_response_problems};
use super::{Credentials, INVALID_TOKEN, Prober};

impl Prober<'_> {
    /// Signs up a throwaway user when the service offers signup.
    pub(super) async fn signup(&mut self) -> Result<Option<Credentials>> {
        const PROBE: &str = "POST /auth/signup (a throwaway user)";
        let username = format!("validate-{}", &auth_kit::random::secret_hex()[..10]);
        let password = Zeroizing::new(auth_kit::random::secret_hex()[..24].to_owned());
        // An address at a reserved domain (RFC 2606), so the forgot-password
        // probe has a known address; its verification mail goes nowhere.
        let body = json!({"username": username, "password": password.as_str(), "email": format!("{username}@example.com")});
        let answer = self.http.post_json("/auth/signup", &body).await?;
        match answer.status {
            201 => {
                let got = format!("201: user '{username}' (it stays in the service's database)");
                self.record(true, PROBE, "201", got);
                Ok(Some((username, password)))
            }
            404 | 405 => {
                self.no_login =
                    "no login: the service has no signup, pass --username (and VALIDATE_PASSWORD)"
                        .to_owned();
                let reason = format!(
                    "no signup here ({}): pass --username (and VALIDATE_PASSWORD) to test logins",
                    answer.status
                );
                self.skip(PROBE, "201", reason);
                Ok(None)
            }
            _ => {
                self.no_login =
                    "no login: the signup failed (or pass --username and VALIDATE_PASSWORD)"
                        .to_owned();
                self.record(false, PROBE, "201", answer.describe());
                Ok(None)
            }
        }
    }

    /// The password grant: a token response as the contract describes it.
    pub(super) async fn first_login(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<Option<Session>> {
        const PROBE: &str = "POST /token (password grant)";
        let expected = "200 {access_token, token_type bearer, expires_in, refresh_token}, Cache-Control: no-store";
        let answer = self.login(username, password, None).await?;
        let problems = token_response_problems(&answer);
        let session = session_of(&answer);
        let got = if answer.status == 200 {
            describe_token_answer(&answer)
        } else {
            answer.describe()
        };
        match (&session, problems.is_empty()) {
            (Some(_), true) => self.record(true, PROBE, expected, got),
            _ => {
                self.no_login = "no login: the login failed".to_owned();
                let got = match answer.status {
                    200 => format!("{got} ({})", problems.join("; ")),
                    400 if answer.body["error_description"] == "email not verified" => format!(
                        "{got}: the service requires verified emails; pass --username (and VALIDATE_PASSWORD) of a verified user"
                    ),
                    400 => format!("{got}; check --username and VALIDATE_PASSWORD"),
                    _ => got,
                };
                self.record(false, PROBE, expected, got);
            }
        }
        Ok(session)
    }

    /// GET /users/me answers the user who logged in, without its password hash.
    pub(super) async fn user_me(
        &mut self,
        session: Option<&Session>,
        username: Option<&str>,
    ) -> Result<()> {
        const PROBE: &str = "GET /users/me with the token";
        let expected = "200, the user (its username, no password hash)";
        let Some(session) = session else {
            self.skip_no_login(PROBE, expected);
            return Ok(());
        };
        let answer = self.me(&session.access).await?;
        let Value::Object(user) = &answer.body else {
            self.record(false, PROBE, expected, answer.describe());
            return Ok(());
        };
        let name_matches = user
            .get("username")
            .and_then(Value::as_str)
            .zip(username)
            .is_some_and(|(got, ours)| got.eq_ignore_ascii_case(ours));
        let leaks = user.keys().any(|k| {
            let k = k.to_ascii_lowercase();
            k.contains("password") || k.contains("hash")
        });
        let got = format!(
            "{}{}{}",
            answer.status,
            if name_matches {
                ", the user"
            } else {
                ", not the user who logged in"
            },
            if leaks { ", WITH a password field" } else { "" }
        );
        self.record(
            answer.status == 200 && name_matches && !leaks,
            PROBE,
            expected,
            got,
        );
        Ok(())
    }

    /// POST /auth/forgot-password answers a known and an unknown address
    /// alike (status and body), so it cannot tell who has an account. The
    /// known address is the logged-in user's (GET /users/me); the unknown
    /// one is random at a reserved domain. SKIP when there is no such route.
    pub(super) async fn forgot_password(&mut self, session: Option<&Session>) -> Result<()> {
        const PROBE: &str = "forgot-password: known vs unknown address";
        let expected = "202 and the same body for both";
        let forgot = async |email: &str| {
            self.http
                .post_json("/auth/forgot-password", &json!({ "email": email }))
                .await
        };
        let known_address = match session {
            Some(session) => self
                .me(&session.access)
                .await?
                .body
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => None,
        };
        let Some(known_address) = known_address else {
            let reason = match session {
                Some(_) => "the probe's user has no email address".to_owned(),
                None => self.no_login.clone(),
            };
            self.skip(PROBE, expected, reason);
            return Ok(());
        };
        // The known address first: a 404 for it means there is no such
        // route; a 404 for the unknown one alone is the leak probed for.
        let known = forgot(&known_address).await?;
        if matches!(known.status, 404 | 405) {
            let reason = format!("no forgot-password route here ({})", known.status);
            self.skip(PROBE, expected, reason);
            return Ok(());
        }
        let unknown_address = format!(
            "validate-{}@example.com",
            &auth_kit::random::secret_hex()[..12]
        );
        let unknown = forgot(&unknown_address).await?;
        let alike = known.status == unknown.status && known.body == unknown.body;
        // Statuses and codes only: the bodies are compared, never printed.
        let got = if alike {
            format!("{} for both, the same body", known.status)
        } else if known.status == unknown.status {
            format!("{} for both, but different bodies", known.status)
        } else {
            format!(
                "known: {}; unknown: {}",
                known.describe(),
                unknown.describe()
            )
        };
        self.record(alike && known.status == 202, PROBE, expected, got);
        Ok(())
    }

    /// A fresh login, logged out: both its tokens are dead after.
    pub(super) async fn logout(&mut self, credentials: Option<&Credentials>) -> Result<()> {
        const LOGOUT: &str = "POST /auth/logout";
        const ACCESS: &str = "after logout: the access token";
        const REFRESH: &str = "after logout: the refresh token";
        let refused = "400, error \"invalid_grant\"";
        let Some((username, password)) = credentials else {
            for (probe, expected) in [(LOGOUT, "204"), (ACCESS, INVALID_TOKEN), (REFRESH, refused)]
            {
                self.skip_no_login(probe, expected);
            }
            return Ok(());
        };
        let answer = self.login(username, password, None).await?;
        let Some(session) = session_of(&answer) else {
            self.record(
                false,
                LOGOUT,
                "204",
                format!("a fresh login for it failed: {}", answer.describe()),
            );
            return Ok(());
        };
        let out = self
            .http
            .post_bearer("/auth/logout", &session.access)
            .await?;
        self.record(out.status == 204, LOGOUT, "204", out.describe());
        let access = self.me(&session.access).await?;
        self.expect_invalid_token(ACCESS, &access);
        match &session.refresh {
            Some(refresh) => {
                let answer = self.refresh_with(refresh).await?;
                let pass = answer.is_error("invalid_grant");
                self.record(pass, REFRESH, refused, answer.describe());
            }
            None => self.skip(REFRESH, refused, "the login gave no refresh token"),
        }
        Ok(())
    }
}
