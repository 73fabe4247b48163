//! The Supabase service's own settings, as entries of auth-kit's settings
//! catalogue ([`auth_kit::config::catalog`]): the parser here reads their
//! names and bounds from them, and the scaffolder writes the stamped `.env`
//! and the docs' settings table from them (after the shared settings a
//! service on an external identity provider reads).

use auth_kit::config::catalog::{EnvValue, Range, Setting, Strategy};

/// Only the Supabase service reads these.
const SUPABASE: &[Strategy] = &[Strategy::External];

/// SUPABASE_URL.
pub const SUPABASE_URL: Setting = Setting {
    name: "SUPABASE_URL",
    default: "none: required for supabase",
    rule: "the project's URL, `https://<project-ref>.supabase.co`; plain `http://` only to this machine (a WARN)",
    comment: "Your Supabase project (Project Settings > API): its URL, and its publishable
(or legacy anon) key. Never a secret or service_role key: those bypass
Row Level Security.
Offline, gotrue-stub stands in for Supabase and accepts the key below:
  cargo run -p gotrue-stub -- --env-file .env",
    strategies: SUPABASE,
    secret: false,
    env: EnvValue::Set("http://127.0.0.1:9999"),
    range: None,
};

/// SUPABASE_KEY.
pub const SUPABASE_KEY: Setting = Setting {
    name: "SUPABASE_KEY",
    default: "none: required for supabase",
    rule: "the project's publishable (or legacy anon) key, sent as `apikey`; never a secret or service_role key",
    comment: "",
    strategies: SUPABASE,
    // Publishable: meant for clients.
    secret: false,
    env: EnvValue::Fresh {
        prefix: "sb_publishable_",
        hex_chars: 32,
    },
    range: None,
};

/// SUPABASE_JWT_SECRET.
pub const SUPABASE_JWT_SECRET: Setting = Setting {
    name: "SUPABASE_JWT_SECRET",
    default: "unset",
    rule: "legacy HS256 projects: at least 32 bytes",
    comment: "Legacy HS256 projects only (otherwise tokens are checked with the project's JWKS):",
    strategies: SUPABASE,
    secret: true,
    env: EnvValue::CommentedOut(""),
    range: None,
};

/// SUPABASE_VERIFY.
pub const SUPABASE_VERIFY: Setting = Setting {
    name: "SUPABASE_VERIFY",
    default: "local",
    rule: "`local` or `remote`",
    comment: "local (JWKS or secret), or remote (GET /auth/v1/user on every request):",
    strategies: SUPABASE,
    secret: false,
    env: EnvValue::CommentedOut("local"),
    range: None,
};

/// SUPABASE_TIMEOUT_SECONDS.
pub const SUPABASE_TIMEOUT_SECONDS: Setting = Setting {
    name: "SUPABASE_TIMEOUT_SECONDS",
    default: "10",
    rule: "1 to 120",
    comment: "",
    strategies: SUPABASE,
    secret: false,
    env: EnvValue::CommentedOut("10"),
    range: Some(Range {
        min: 1,
        max: 120,
        default: 10,
    }),
};

/// Every Supabase setting, in the order the stamped `.env` lists them
/// (before the shared ones).
pub const ALL: &[Setting] = &[
    SUPABASE_URL,
    SUPABASE_KEY,
    SUPABASE_JWT_SECRET,
    SUPABASE_VERIFY,
    SUPABASE_TIMEOUT_SECONDS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_fresh_and_publishable() {
        let line = SUPABASE_KEY.env_lines("x");
        assert_eq!(
            line.trim_end().len(),
            "SUPABASE_KEY=sb_publishable_".len() + 32
        );
    }

    #[test]
    fn the_timeout_is_shown_as_read() {
        let range = SUPABASE_TIMEOUT_SECONDS.range.unwrap();
        assert_eq!(SUPABASE_TIMEOUT_SECONDS.default, range.default.to_string());
        assert_eq!(
            SUPABASE_TIMEOUT_SECONDS.rule,
            format!("{} to {}", range.min, range.max)
        );
        assert!(range.min <= range.default && range.default <= range.max);
        let unset = auth_kit::config::Environment::from_pairs::<&str, &str>([]);
        assert_eq!(
            SUPABASE_TIMEOUT_SECONDS.number(&unset).unwrap(),
            range.default
        );
    }

    #[test]
    fn secrets_are_never_shown() {
        for s in ALL.iter().filter(|s| s.secret) {
            assert!(s.range.is_none(), "{}", s.name);
            assert!(!matches!(s.env, EnvValue::Set(_)), "{}", s.name);
        }
    }

    #[test]
    fn names_are_unique_among_all_settings() {
        for s in ALL {
            assert!(s.name.starts_with("SUPABASE_"), "{}", s.name);
            assert!(
                auth_kit::config::catalog::find(s.name).is_none(),
                "{}",
                s.name
            );
        }
    }
}
