//! Checks of a service's OpenAPI document (its `/openapi.json`, read as
//! JSON) that hold for every service on the kit: its own `info`, a
//! description on every response, the contract's `ErrorBody` on every
//! error, the errors every protected operation and every request body can
//! answer, and the list parameters. Lookups of one operation, parameter or
//! response, for the checks a service makes of its own routes.
//!
//! Every check panics naming the method, path and status it found wrong.
//!
//! ```
//! use auth_kit::testing::openapi;
//! use serde_json::json;
//!
//! let error = json!({"description": "`not_found`", "content": {"application/json":
//!     {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
//! let doc = json!({
//!     "info": {"title": "my-api", "version": "0.1.0", "description": "What it does."},
//!     "paths": {"/items/{id}": {"delete": {
//!         "security": [{"oauth2": []}],
//!         "parameters": [{"name": "id", "in": "path", "schema": {"minimum": 1}}],
//!         "responses": {"204": {"description": "Deleted"}, "401": error, "403": error, "404": error},
//!     }}},
//! });
//! openapi::assert_info_is_the_services(&doc, "my-api", "0.1.0");
//! openapi::assert_every_response_in_contract_shape(&doc);
//! openapi::assert_protected_operations_list(&doc, &["401", "403"]);
//! assert_eq!(openapi::parameter(&doc, "/items/{id}", "delete", "id")["schema"]["minimum"], 1);
//! assert!(openapi::response_description(&doc, "/items/{id}", "delete", "404").contains("not_found"));
//! ```

use serde_json::{Value, json};

use crate::page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, MIN_PAGE_LIMIT};

/// Text that would mean a dependency's metadata leaked into the document:
/// utoipa's author, its name, and its license.
const STRANGERS: [&str; 3] = ["Kukkonen", "utoipa", "MIT OR Apache-2.0"];

/// The keys of a path item that are operations (the others, such as
/// `parameters` or `summary`, describe the path).
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of `doc`, as `(method, path, operation)`.
///
/// # Panics
/// When `doc` has no `paths` object, or a path item is not an object.
pub fn operations(doc: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("the document has no paths: {doc}"))
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap_or_else(|| panic!("{path} is not a path item: {item}"))
                .iter()
                .filter(|(key, _)| METHODS.contains(&key.as_str()))
                .map(move |(method, operation)| (method.as_str(), path.as_str(), operation))
        })
}

/// The operation `method path` (`method` in lower case, as in the document).
///
/// # Panics
/// When the document has no such operation.
#[track_caller]
pub fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    doc["paths"][path]
        .get(method)
        .unwrap_or_else(|| panic!("the document has no {method} {path}"))
}

/// The parameter `name` of `method path`.
///
/// # Panics
/// When the operation or the parameter is missing.
#[track_caller]
pub fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    operation(doc, path, method)["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name:?}"))
}

/// The description of the `status` response of `method path`.
///
/// # Panics
/// When the operation has no such response, or it has no description.
#[track_caller]
pub fn response_description<'a>(doc: &'a Value, path: &str, method: &str, status: &str) -> &'a str {
    operation(doc, path, method)["responses"][status]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} has no described {status} response"))
}

/// `info` is the service's own: `title` and `version`, a description, and
/// no contact or license (its Cargo.toml sets none); nowhere in the
/// document does a dependency's author, name or license show.
///
/// # Panics
/// When one of these does not hold.
#[track_caller]
pub fn assert_info_is_the_services(doc: &Value, title: &str, version: &str) {
    let info = &doc["info"];
    assert_eq!(info["title"], title, "{info}");
    assert_eq!(info["version"], version, "{info}");
    assert!(
        info["description"].as_str().is_some_and(|d| !d.is_empty()),
        "no description: {info}"
    );
    assert!(info.get("contact").is_none(), "{info}");
    assert!(info.get("license").is_none(), "{info}");
    let text = doc.to_string();
    for stranger in STRANGERS {
        assert!(!text.contains(stranger), "{stranger} in the document");
    }
}

/// Every response of every operation is described, and every 4xx and 5xx
/// response is the contract's `ErrorBody` as JSON.
///
/// # Panics
/// On the first response that is not.
#[track_caller]
pub fn assert_every_response_in_contract_shape(doc: &Value) {
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let mut checked = 0;
    for (method, path, operation) in operations(doc) {
        for (status, response) in responses(method, path, operation) {
            checked += 1;
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"], error_body,
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert!(checked > 0, "the document describes no response: {doc}");
}

/// Every operation with a security requirement lists each of `statuses`
/// (401 and 403 at least: no token or a bad one, and a refused role,
/// permission or scope).
///
/// # Panics
/// On the first protected operation that lacks one.
#[track_caller]
pub fn assert_protected_operations_list(doc: &Value, statuses: &[&str]) {
    let mut checked = 0;
    for (method, path, operation) in operations(doc) {
        if operation.get("security").is_some() {
            assert_lists(method, path, operation, statuses);
            checked += 1;
        }
    }
    assert!(checked > 0, "no operation has a security requirement");
}

/// Every operation that takes a JSON body lists 400 (broken), 413 (too
/// large), 415 (not JSON) and 422 (a field is wrong); one that takes a form
/// (the token endpoint) lists 400 (RFC 6749 refuses with it) and 413.
///
/// # Panics
/// On the first operation that lacks one.
#[track_caller]
pub fn assert_request_bodies_can_be_refused(doc: &Value) {
    let mut checked = 0;
    for (method, path, operation) in operations(doc) {
        let Some(body) = operation.get("requestBody") else {
            continue;
        };
        let content = &body["content"];
        if content.get("application/json").is_some() {
            assert_lists(method, path, operation, &["400", "413", "415", "422"]);
        } else if content.get("application/x-www-form-urlencoded").is_some() {
            assert_lists(method, path, operation, &["400", "413"]);
        } else {
            panic!("{method} {path}: a request body of another media type: {content}");
        }
        checked += 1;
    }
    assert!(checked > 0, "no operation takes a request body");
}

/// `GET path` is a list: `limit` from the kit's minimum to its maximum, by
/// default its default, and `after` an id (from 1).
///
/// # Panics
/// When a parameter is missing or has other bounds.
#[track_caller]
pub fn assert_page_parameters(doc: &Value, path: &str) {
    let limit = &parameter(doc, path, "get", "limit")["schema"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (
            &json!(MIN_PAGE_LIMIT),
            &json!(MAX_PAGE_LIMIT),
            &json!(DEFAULT_PAGE_LIMIT)
        ),
        "get {path}: limit"
    );
    let after = &parameter(doc, path, "get", "after")["schema"];
    assert_eq!(after["minimum"], json!(1), "get {path}: after");
}

fn responses<'a>(
    method: &str,
    path: &str,
    operation: &'a Value,
) -> &'a serde_json::Map<String, Value> {
    operation["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} has no responses"))
}

#[track_caller]
fn assert_lists(method: &str, path: &str, operation: &Value, statuses: &[&str]) {
    let responses = responses(method, path, operation);
    for status in statuses {
        assert!(
            responses.contains_key(*status),
            "{method} {path} lacks {status}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error() -> Value {
        json!({"description": "an error", "content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    }

    fn doc_with(responses: Value) -> Value {
        json!({"paths": {"/x": {"post": {
            "security": [{"oauth2": []}],
            "requestBody": {"content": {"application/json": {}}},
            "responses": responses,
        }}}})
    }

    #[test]
    fn a_document_in_the_contract_passes() {
        let e = error();
        let doc = doc_with(
            json!({"200": {"description": "ok"}, "400": e, "401": e, "403": e, "413": e, "415": e, "422": e}),
        );
        assert_every_response_in_contract_shape(&doc);
        assert_protected_operations_list(&doc, &["401", "403"]);
        assert_request_bodies_can_be_refused(&doc);
    }

    #[test]
    #[should_panic(expected = "post /x 200: no description")]
    fn an_undescribed_response_fails() {
        assert_every_response_in_contract_shape(&doc_with(json!({"200": {"description": ""}})));
    }

    #[test]
    #[should_panic(expected = "post /x 404")]
    fn an_error_of_another_shape_fails() {
        assert_every_response_in_contract_shape(&doc_with(
            json!({"404": {"description": "gone", "content": {"text/plain": {}}}}),
        ));
    }

    #[test]
    #[should_panic(expected = "post /x lacks 503")]
    fn a_protected_operation_without_a_status_fails() {
        let e = error();
        assert_protected_operations_list(
            &doc_with(json!({"401": e, "403": e})),
            &["401", "403", "503"],
        );
    }

    #[test]
    #[should_panic(expected = "post /x lacks 415")]
    fn a_json_body_without_415_fails() {
        let e = error();
        assert_request_bodies_can_be_refused(&doc_with(json!({"400": e, "413": e, "422": e})));
    }

    #[test]
    #[should_panic(expected = "no operation takes a request body")]
    fn a_document_without_the_checked_parts_does_not_pass_unchecked() {
        let doc = json!({"paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}}});
        assert_every_response_in_contract_shape(&doc);
        assert_request_bodies_can_be_refused(&doc);
    }

    #[test]
    #[should_panic(expected = "no operation has a security requirement")]
    fn a_document_without_protected_operations_does_not_pass_unchecked() {
        let doc = json!({"paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}}});
        assert_protected_operations_list(&doc, &["401"]);
    }

    #[test]
    #[should_panic(expected = "another media type")]
    fn a_body_of_another_media_type_is_named() {
        let doc = json!({"paths": {"/x": {"post": {
            "requestBody": {"content": {"application/json; charset=utf-8": {}}},
            "responses": {},
        }}}});
        assert_request_bodies_can_be_refused(&doc);
    }

    #[test]
    fn path_level_keys_are_not_operations() {
        let doc = json!({"paths": {"/x": {"summary": "s", "parameters": [], "get": {}}}});
        let methods: Vec<&str> = operations(&doc).map(|(m, _, _)| m).collect();
        assert_eq!(methods, ["get"]);
    }

    #[test]
    #[should_panic(expected = "utoipa in the document")]
    fn a_dependencys_name_fails() {
        let doc = json!({"info": {"title": "a", "version": "1", "description": "d"},
            "x": "built with utoipa"});
        assert_info_is_the_services(&doc, "a", "1");
    }

    #[test]
    #[should_panic(expected = "license")]
    fn a_license_fails() {
        let doc = json!({"info": {"title": "a", "version": "1", "description": "d",
            "license": {"name": "Apache-2.0"}}});
        assert_info_is_the_services(&doc, "a", "1");
    }

    #[test]
    #[should_panic(expected = "get /x has no parameter \"limit\"")]
    fn a_missing_parameter_is_named() {
        parameter(&json!({"paths": {"/x": {"get": {}}}}), "/x", "get", "limit");
    }

    #[test]
    fn page_parameters_are_the_kits() {
        let limit = json!({"minimum": MIN_PAGE_LIMIT, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT});
        let doc = json!({"paths": {"/x": {"get": {"parameters": [
            {"name": "limit", "schema": limit},
            {"name": "after", "schema": {"minimum": 1}},
        ]}}}});
        assert_page_parameters(&doc, "/x");
    }
}
