#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod account;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod error;
pub mod extract;
pub mod http;
pub mod limiter;
pub mod login;
pub mod mail;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod page;
pub mod password;
pub mod policy;
pub mod random;
pub mod refresh;
pub mod run;
pub mod session_cache;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod username;

pub use clock::Clock;
pub use error::{ApiError, AuthError, ErrorBody, OAuthError};
pub use extract::{Authenticator, CurrentUser, RequirePermission, RequireRole, RequireScopes};
pub use login::{LoginService, ScopeMode};
