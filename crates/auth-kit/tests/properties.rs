//! Property tests of every parser that faces input: the bearer header, the
//! token form, the JSON bodies (signup, user update, a service's own body),
//! path ids, list
//! parameters and the settings. Whatever arrives, none panics, and every
//! refusal is in the contract's shape: a 4xx with a JSON body of exactly
//! `error` and `error_description`, 422 descriptions naming a field, no
//! Rust type's name, no echo of a secret.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "common/policy.rs"]
mod policy;

use std::sync::Arc;

use auth_kit::config::{Environment, ServiceSettings, Status, check_service};
use auth_kit::extract::BearerToken;
use auth_kit::http::{ResourceId, SecretString, TokenRequest, parse_json};
use auth_kit::login::SignupRequest;
use auth_kit::page::PageRequest;
use auth_kit::store::UserUpdate;
use auth_kit::token::{AccessTokenVerifier, ClaimRules, Leeway, SigningKeys};
use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, Request, header};
use axum::response::IntoResponse;
use proptest::prelude::*;
use serde_json::Value;

/// The response of `error` as (status, body), checked to be the contract's
/// shape: a 4xx with `{"error", "error_description"}` and nothing else.
fn contract_shape(error: impl IntoResponse) -> (u16, Value) {
    let response = error.into_response();
    let status = response.status().as_u16();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), 64 * 1024))
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 2, "{body}");
    assert!(
        object["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(object["error_description"].is_string(), "{body}");
    (status, body)
}

/// A body a service declares itself (the templates' items have this
/// shape): parsed by the kit's `parse_json`, checked by its own validator
/// with the kit's `ApiError::validation`.
#[derive(Debug, serde::Deserialize)]
struct NewNote {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

impl NewNote {
    fn validate(&self) -> Result<(), auth_kit::ApiError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 200 {
            return Err(auth_kit::ApiError::validation(
                "title",
                "must be 1 to 200 characters",
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 5000)
        {
            return Err(auth_kit::ApiError::validation(
                "description",
                "must be at most 5000 characters",
            ));
        }
        Ok(())
    }
}

/// Words that would mean a Rust type, or serde's raw message (which names
/// types and echoes input), reached a client.
const RUST_WORDS: [&str; 11] = [
    "struct ",
    "SignupRequest",
    "UserUpdate",
    "NewNote",
    "Option<",
    "Vec<",
    " u8",
    " i64",
    "invalid type",
    "invalid value",
    "expected ",
];

fn assert_field_message(body: &Value, fields: &[&str]) {
    let description = body["error_description"].as_str().unwrap();
    if body["error"] == "validation_failed" {
        let field = description.split(": ").next().unwrap();
        let root = field.split(['.', '[']).next().unwrap();
        assert!(
            root == "body" || fields.contains(&root),
            "unknown field {field:?} in {description:?}"
        );
    }
    for word in RUST_WORDS {
        assert!(!description.contains(word), "{word:?} in {description:?}");
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object using the request types' own field names (so the field
/// checks are reached), with any values.
fn request_object() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("username"),
        Just("password"),
        Just("email"),
        Just("full_name"),
        Just("title"),
        Just("description"),
        Just("role"),
        Just("disabled"),
        Just("permissions"),
        Just("other"),
    ];
    let value = prop_oneof![
        3 => ".{0,80}".prop_map(Value::from),
        1 => json_value(),
        1 => prop::collection::vec("[a-z:]{0,14}", 0..4).prop_map(Value::from),
    ];
    prop::collection::btree_map(names, value, 0..7)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Bytes that are JSON, almost JSON, or anything.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        request_object().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        request_object().prop_flat_map(|v| {
            let text = v.to_string().into_bytes();
            let len = text.len();
            (Just(text), 0..=len).prop_map(|(t, cut)| t[..cut].to_vec())
        }),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_bodies_never_panic_and_refuse_in_shape(bytes in body_bytes()) {
        let policy = policy::policy();
        // No refusal quotes the input back.
        let quoted = serde_json::from_slice::<Value>(&bytes)
            .map(|v| strings_in(&v))
            .unwrap_or_default();
        let no_echo = |body: &Value| {
            let description = body["error_description"].as_str().unwrap_or_default();
            quoted.iter().all(|q| !description.contains(q.as_str()))
        };
        match parse_json::<SignupRequest>(&bytes) {
            Ok(signup) => {
                if let Err(e) = signup.validate() {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 422);
                    assert_field_message(&body, &["username", "password", "email", "full_name"]);
                    prop_assert!(no_echo(&body), "{body}");
                }
            }
            Err(e) => {
                let (status, body) = contract_shape(e);
                prop_assert!(status == 400 || status == 422);
                assert_field_message(&body, &["username", "password", "email", "full_name"]);
                prop_assert!(no_echo(&body), "{body}");
            }
        }
        match parse_json::<NewNote>(&bytes) {
            Ok(item) => {
                if let Err(e) = item.validate() {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 422);
                    assert_field_message(&body, &["title", "description"]);
                }
            }
            Err(e) => {
                let (_, body) = contract_shape(e);
                assert_field_message(&body, &["title", "description"]);
            }
        }
        match parse_json::<UserUpdate>(&bytes) {
            Ok(update) => {
                if let Err(e) = update.validate(&policy) {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 422);
                    assert_field_message(&body, &["role", "disabled", "permissions"]);
                }
            }
            Err(e) => {
                let (_, body) = contract_shape(e);
                assert_field_message(&body, &["role", "disabled", "permissions"]);
            }
        }
    }

    #[test]
    fn the_token_form_never_panics(
        pairs in prop::collection::vec(
            (prop_oneof![
                Just("grant_type".to_owned()),
                Just("username".to_owned()),
                Just("password".to_owned()),
                Just("scope".to_owned()),
                Just("refresh_token".to_owned()),
                ".{0,12}",
            ], ".{0,60}"),
            0..8,
        ),
        raw in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        for body in [encoded.as_bytes(), raw.as_slice()] {
            match TokenRequest::parse(body) {
                Ok(request) => {
                    // The secrets never show in Debug output: it is the same
                    // whatever they hold. (Searching the output for the
                    // password found it when another field held the same
                    // text, or when it was a word of the output itself.)
                    let debug = format!("{request:?}");
                    let mut other = request.clone();
                    let replaced = |s: &Option<SecretString>| {
                        s.as_ref().map(|_| SecretString::new("another secret".to_owned()))
                    };
                    other.password = replaced(&request.password);
                    other.refresh_token = replaced(&request.refresh_token);
                    prop_assert_eq!(&debug, &format!("{other:?}"));
                    let policy = policy::policy();
                    if let Err(unknown) = policy.parse_scope_request(request.scope.as_deref()) {
                        prop_assert!(unknown.0.chars().count() <= 64);
                    }
                }
                Err(e) => {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 400);
                    prop_assert_eq!(&body["error"], "invalid_request");
                }
            }
        }
    }

    #[test]
    fn bearer_headers_never_panic(value in prop::collection::vec(any::<u8>(), 0..300), scheme in "(Bearer|bearer|BEARER|Basic|) {0,3}") {
        let mut bytes = scheme.into_bytes();
        bytes.extend(value);
        let Ok(header) = HeaderValue::from_bytes(&bytes) else {
            return Ok(()); // not a header hyper would accept
        };
        let (mut parts, ()) = Request::builder()
            .header(header::AUTHORIZATION, header)
            .body(())
            .unwrap()
            .into_parts();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        match runtime.block_on(BearerToken::from_request_parts(&mut parts, &())) {
            Ok(BearerToken(token)) => {
                prop_assert!(!token.is_empty() && token.len() <= 8192);
                prop_assert_eq!(token.trim(), token.as_str());
                // Whatever it is, verification refuses it (never panics).
                let verifier = verifier();
                if let Err(e) = verifier.verify(&token) {
                    let (status, body) = contract_shape(auth_kit::AuthError::from(e));
                    prop_assert_eq!(status, 401);
                    prop_assert_eq!(&body["error"], "invalid_token");
                }
            }
            Err(e) => {
                let response = e.clone().into_response();
                prop_assert!(response.headers().get(header::WWW_AUTHENTICATE).is_some());
                let (status, _) = contract_shape(e);
                prop_assert_eq!(status, 401);
            }
        }
    }

    #[test]
    fn ids_and_list_parameters_never_panic(raw in ".{0,24}", digits in "[0-9]{1,22}") {
        for candidate in [raw.as_str(), digits.as_str()] {
            match ResourceId::parse(candidate) {
                Ok(ResourceId(id)) => {
                    prop_assert!(id > 0);
                    prop_assert_eq!(id.to_string().len() <= candidate.len(), true);
                    prop_assert!(candidate.bytes().all(|b| b.is_ascii_digit()));
                }
                Err(e) => {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 422);
                    prop_assert_eq!(&body["error_description"], "id: must be a positive integer");
                }
            }
            let query = format!("limit={candidate}&after={candidate}");
            match PageRequest::parse("/items", Some(&query)) {
                Ok(page) => prop_assert!((1..=200).contains(&page.limit)),
                Err(e) => {
                    let (status, body) = contract_shape(e);
                    prop_assert_eq!(status, 422);
                    let description = body["error_description"].as_str().unwrap();
                    prop_assert!(description.starts_with("limit: ") || description.starts_with("after: "));
                }
            }
        }
    }

    #[test]
    fn settings_never_panic_and_name_the_variable(
        values in prop::collection::vec(".{0,70}", SETTINGS.len()),
        present in prop::collection::vec(any::<bool>(), SETTINGS.len()),
    ) {
        let pairs: Vec<(&str, &str)> = SETTINGS
            .iter()
            .zip(&values)
            .zip(&present)
            .filter(|(_, set)| **set)
            .map(|((name, value), _)| (*name, value.as_str()))
            .collect();
        let env = Environment::from_pairs(pairs.iter().copied());
        let findings = check_service(&env, "svc");
        match ServiceSettings::from_env(&env, "svc") {
            Ok(_) => prop_assert!(findings.iter().all(|f| f.status != Status::Fail)),
            Err(e) => {
                prop_assert!(SETTINGS.contains(&e.variable()) || e.variable() == "JWT_PUBLIC_KEY_FILE", "{}", e.variable());
                let line = e.to_string();
                prop_assert!(!line.contains('\n'), "{line}");
                prop_assert!(findings.iter().any(|f| f.status == Status::Fail && f.subject == e.variable()));
                // A secret's value never appears in what is printed.
                for secret in ["SECRET_KEY", "ADMIN_PASSWORD"] {
                    if let Some((_, value)) = pairs.iter().find(|(n, _)| *n == secret)
                        && value.trim().len() >= 12
                    {
                        prop_assert!(!line.contains(value.trim()), "{secret} in {line}");
                        for finding in &findings {
                            prop_assert!(!finding.message.contains(value.trim()));
                        }
                    }
                }
            }
        }
    }
}

/// The strings of a JSON value long enough to be recognised if echoed
/// (field names excluded: a message names its field).
fn strings_in(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) if s.chars().count() >= 8 => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings_in).collect(),
        Value::Object(map) => map.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

/// Every variable a jwt/oauth2 service reads.
const SETTINGS: [&str; 18] = [
    "SECRET_KEY",
    "ALGORITHM",
    "JWT_PRIVATE_KEY_FILE",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "REFRESH_TOKEN_EXPIRE_DAYS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECONDS",
    "DATABASE_URL",
    "HOST",
    "PORT",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "LOGIN_MAX_FAILURES",
    "LOGIN_LOCKOUT_SECONDS",
    "ITEMS_MAX_PER_USER",
    "JWT_PUBLIC_KEY_FILE",
    "ENV_FILE",
];

fn verifier() -> AccessTokenVerifier {
    let keys = Arc::new(SigningKeys::random_hmac());
    AccessTokenVerifier::new(
        &keys,
        ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap()),
    )
}
