//! Items, the resource of the runnable examples (`examples/`): the oauth2
//! template's own items module (`templates/oauth2_flow/src/items/`),
//! compiled from its files, so the examples and a stamped service run the
//! same types, input rules and queries and cannot drift apart. The table is
//! created by auth-kit's first migration.

#[path = "../../../templates/oauth2_flow/src/items/mod.rs"]
mod template_items;

pub use template_items::*;
