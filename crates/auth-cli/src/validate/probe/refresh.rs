//! The refresh-token probes: rotation, the optional reuse window, and reuse
//! detection revoking the login. A service with a reuse window answers a
//! second use of a just-rotated token with the same successor; one without
//! answers 400 (and revokes the login). Either way, once the successor was
//! used, the old token is reuse: 400, and the login's tokens die.

use anyhow::Result;

use super::session::{Session, describe_token_answer, session_of};
use super::{INVALID_TOKEN, Prober};

const ROTATION: &str = "refresh rotation (old refresh token spent)";
const WINDOW: &str = "refresh again within the reuse window";
const REUSE_REFRESH: &str = "refresh reuse: the newer refresh token";
const REUSE_ACCESS: &str = "refresh reuse: the login's access token";
const ROTATION_EXPECTED: &str = "200 with a new pair, then 400 invalid_grant for the old refresh token (once its successor was used)";
const WINDOW_EXPECTED: &str =
    "200 with the same new refresh token (optional; a service without a window answers 400)";
const REUSE_EXPECTED: &str = "400, error \"invalid_grant\" (reuse revokes the login)";

impl Prober<'_> {
    /// Rotation, the optional reuse window, and reuse detection (see the
    /// module's documentation).
    pub(super) async fn refresh(&mut self, session: Option<&Session>) -> Result<()> {
        let Some(old) = session.and_then(|s| s.refresh.as_ref()) else {
            for (probe, expected) in [
                (ROTATION, ROTATION_EXPECTED),
                (WINDOW, WINDOW_EXPECTED),
                (REUSE_REFRESH, REUSE_EXPECTED),
                (REUSE_ACCESS, INVALID_TOKEN),
            ] {
                self.skip_no_login(probe, expected);
            }
            return Ok(());
        };
        let rotated = self.refresh_with(old).await?;
        let next = session_of(&rotated).filter(|s| {
            s.refresh
                .as_ref()
                .is_some_and(|new| new.as_str() != old.as_str())
        });
        let Some(next) = next else {
            let got = if rotated.status == 200 {
                format!("{} (no new refresh token)", describe_token_answer(&rotated))
            } else {
                rotated.describe()
            };
            self.record(false, ROTATION, ROTATION_EXPECTED, got);
            self.skip(WINDOW, WINDOW_EXPECTED, "the refresh failed");
            self.skip_reuse("the refresh failed");
            return Ok(());
        };
        let Some(newest) = self.replay(old, next).await? else {
            return Ok(());
        };
        self.reuse(&newest).await
    }

    /// The same `old` token again at once (a second tab, or a retry), after
    /// it gave `next`. The login's newest tokens, or `None` when the reuse
    /// probes cannot run (recorded).
    async fn replay(&mut self, old: &str, next: Session) -> Result<Option<Session>> {
        let next_refresh = next.refresh.as_ref().map(|r| r.as_str());
        let again = self.refresh_with(old).await?;
        let replayed = session_of(&again);
        let same_successor = replayed
            .as_ref()
            .is_some_and(|s| s.refresh.as_ref().map(|r| r.as_str()) == next_refresh);
        if same_successor {
            return self
                .within_window(old, next_refresh.unwrap_or_default())
                .await;
        }
        if again.is_error("invalid_grant") {
            let got = format!(
                "200 with a new pair; the old refresh token then: {}",
                again.describe()
            );
            self.record(true, ROTATION, ROTATION_EXPECTED, got);
            self.skip(
                WINDOW,
                WINDOW_EXPECTED,
                "400 invalid_grant at once: the service has no reuse window (it is optional)",
            );
            return Ok(Some(next));
        }
        let got = if replayed.is_some() {
            "200 with ANOTHER new refresh token: one token gave two live successors".to_owned()
        } else {
            again.describe()
        };
        let rotation_got = format!("200 with a new pair; the old refresh token then: {got}");
        self.record(false, ROTATION, ROTATION_EXPECTED, rotation_got);
        self.record(false, WINDOW, WINDOW_EXPECTED, got);
        self.skip_reuse("the old refresh token was not refused");
        Ok(None)
    }

    /// The service has a reuse window: `old` gave `successor` twice. Using
    /// the successor makes the old token reuse, window or not.
    async fn within_window(&mut self, old: &str, successor: &str) -> Result<Option<Session>> {
        let window_got = "200 with the same new refresh token and a fresh access token";
        let spent = self.refresh_with(successor).await?;
        let Some(newest) = session_of(&spent) else {
            let got = format!("the new refresh token was refused: {}", spent.describe());
            self.record(false, ROTATION, ROTATION_EXPECTED, got);
            self.record(true, WINDOW, WINDOW_EXPECTED, window_got.to_owned());
            self.skip_reuse("the refresh failed");
            return Ok(None);
        };
        let reused = self.refresh_with(old).await?;
        let got = format!(
            "200 with a new pair; the old refresh token, once the new one was used: {}",
            reused.describe()
        );
        self.record(
            reused.is_error("invalid_grant"),
            ROTATION,
            ROTATION_EXPECTED,
            got,
        );
        self.record(true, WINDOW, WINDOW_EXPECTED, window_got.to_owned());
        Ok(Some(newest))
    }

    /// After reuse, the login's newest tokens are dead.
    async fn reuse(&mut self, newest: &Session) -> Result<()> {
        let Some(newer) = &newest.refresh else {
            return Ok(());
        };
        let after = self.refresh_with(newer).await?;
        self.record(
            after.is_error("invalid_grant"),
            REUSE_REFRESH,
            REUSE_EXPECTED,
            after.describe(),
        );
        let access = self.me(&newest.access).await?;
        self.record(
            access.is_invalid_token(),
            REUSE_ACCESS,
            INVALID_TOKEN,
            access.describe(),
        );
        Ok(())
    }

    fn skip_reuse(&mut self, reason: &str) {
        self.skip(REUSE_REFRESH, REUSE_EXPECTED, reason);
        self.skip(REUSE_ACCESS, INVALID_TOKEN, reason);
    }
}
