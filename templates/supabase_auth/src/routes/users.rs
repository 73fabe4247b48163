//! Your profile, from the verified token alone, and an admin-only route.

use auth_kit::extract::standard::Admin;
use auth_kit_supabase::{CurrentSupabaseUser, RequireSupabaseRole, SupabaseProfile};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// `{id, email, role, app_metadata, user_metadata}` from the token: no call
/// to Supabase in local verification mode.
#[utoipa::path(get, path = "/users/me", tag = "users", responses(
    (status = 200, body = SupabaseProfile),
))]
pub async fn me(caller: CurrentSupabaseUser) -> Json<SupabaseProfile> {
    Json(caller.user.profile())
}

/// What the admin route answers.
#[derive(Serialize, ToSchema)]
pub struct AdminAnswer {
    message: &'static str,
    user: SupabaseProfile,
}

/// For users whose `app_metadata.role` is `admin` (set by the server, with
/// the service-role key; `user_metadata` never counts).
#[utoipa::path(get, path = "/admin", tag = "users", responses(
    (status = 200, body = AdminAnswer),
))]
pub async fn admin(caller: RequireSupabaseRole<Admin>) -> Json<AdminAnswer> {
    Json(AdminAnswer {
        message: "You are an admin.",
        user: caller.user.profile(),
    })
}
