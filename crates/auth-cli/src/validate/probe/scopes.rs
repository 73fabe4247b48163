//! The scope probes: a token without the scope a route needs, a scope the
//! user does not hold, and an admin's token narrowed to `me`.

use anyhow::Result;

use super::http::is_bearer;
use super::session::{Session, describe_token_answer, session_of};
use super::{Credentials, Prober};

impl Prober<'_> {
    /// A token asked for `me` only is refused at a route that needs more,
    /// with the challenge naming the scope.
    pub(super) async fn missing_scope(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "missing scope (token with scope=me only)";
        let expected = "403, WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"...\" at GET /users/me/items";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip_no_login(PROBE, expected);
            return Ok(());
        };
        if session.scope().is_none() {
            self.skip(
                PROBE,
                expected,
                "the service issues no scopes (tokens carry no scope claim)",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("me")).await?;
        let narrow = session_of(&answer);
        let Some(narrow) = narrow.filter(|s| s.holds_only("me")) else {
            let got = format!(
                "asking for scope=me: {}",
                if answer.status == 200 {
                    describe_token_answer(&answer)
                } else {
                    answer.describe()
                }
            );
            self.record(false, PROBE, expected, got);
            return Ok(());
        };
        let items = self
            .http
            .get("/users/me/items", Some(&narrow.access))
            .await?;
        let pass = items.status == 403
            && items.challenge.as_deref().is_some_and(|c| {
                is_bearer(c) && c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"")
            });
        self.record(pass, PROBE, expected, items.describe());
        Ok(())
    }

    /// Asking for a scope the user does not hold is refused, not granted.
    pub(super) async fn unheld_scope(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "scope the user does not hold (scope=admin)";
        let expected = "400, error \"invalid_scope\"";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip_no_login(PROBE, expected);
            return Ok(());
        };
        if session.holds("admin") {
            self.skip(
                PROBE,
                expected,
                "this user holds admin: probe with a non-admin --username",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("admin")).await?;
        if answer.status == 400 {
            self.record(
                answer.is_error("invalid_scope"),
                PROBE,
                expected,
                answer.describe(),
            );
            return Ok(());
        }
        let granted = session_of(&answer);
        match granted {
            Some(g) if g.holds("admin") => {
                self.record(
                    false,
                    PROBE,
                    expected,
                    format!(
                        "{}: admin GRANTED to a user who does not hold it",
                        answer.status
                    ),
                );
            }
            Some(g) if g.scope().is_none() && session.scope().is_none() => {
                self.skip(
                    PROBE,
                    expected,
                    "the service issues no scopes and ignores the scope parameter",
                );
            }
            _ => self.record(false, PROBE, expected, answer.describe()),
        }
        Ok(())
    }

    /// Least privilege: an admin's token asked for `me` only must not
    /// administer (the role is not enough without the scope `admin`).
    pub(super) async fn down_scoped_admin(
        &mut self,
        session: Option<&Session>,
        credentials: Option<&Credentials>,
    ) -> Result<()> {
        const PROBE: &str = "down-scoped admin token at GET /users";
        let expected =
            "403, WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"admin\"";
        let (Some(session), Some((username, password))) = (session, credentials) else {
            self.skip_no_login(PROBE, expected);
            return Ok(());
        };
        if session.scope().is_none() {
            self.skip(
                PROBE,
                expected,
                "the service issues no scopes: roles alone decide",
            );
            return Ok(());
        }
        if !session.holds("admin") {
            self.skip(
                PROBE,
                expected,
                "this user is no admin: probe with an admin's --username",
            );
            return Ok(());
        }
        let answer = self.login(username, password, Some("me")).await?;
        let Some(narrow) = session_of(&answer).filter(|s| s.holds_only("me")) else {
            let got = format!("asking for scope=me: {}", answer.describe());
            self.record(false, PROBE, expected, got);
            return Ok(());
        };
        let users = self.http.get("/users", Some(&narrow.access)).await?;
        let pass = users.status == 403
            && users.challenge.as_deref().is_some_and(|c| {
                is_bearer(c)
                    && c.contains("error=\"insufficient_scope\"")
                    && c.contains("scope=\"admin\"")
            });
        self.record(pass, PROBE, expected, users.describe());
        Ok(())
    }
}
