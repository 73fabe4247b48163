//! `cargo xtask templates [--check]`: writes `templates/jwt_auth` from its
//! one source, `templates/oauth2_flow`.
//!
//! The jwt service is the oauth2 service without scopes: the same files
//! with the edits in [`JWT_EDITS`] (its handlers ask for `CurrentUser`
//! where oauth2's ask for a scope, and its docs say so), apart from the
//! files it owns ([`JWT_OWNS`]: its README, and `tests/scopes.rs`, which
//! tests what tokens without scopes do where oauth2's tests what scopes
//! do). So a change is made once, in `oauth2_flow` (or in a
//! file jwt owns), and `cargo xtask templates` writes the jwt tree; the
//! committed trees are both complete, so each still renders with `cargo
//! generate --path templates/<name>`.
//!
//! Every edit must match its file exactly once: an edit that no longer
//! matches stops the generator, naming the file and the text, instead of
//! leaving a scope in the jwt service. `--check` (and this module's test,
//! so `cargo xtask test` and CI) fails when the committed jwt tree is not
//! what the generator writes, the way rust-analyzer checks its generated
//! code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::repo;

/// Arguments of `cargo xtask templates`.
#[derive(clap::Args, Debug)]
pub struct TemplatesArgs {
    /// Write nothing: list the jwt files that differ from what would be
    /// written, and fail when there is any.
    #[arg(long)]
    pub check: bool,
}

/// The one source.
pub const SOURCE: &str = "templates/oauth2_flow";
/// The template written from it.
pub const JWT: &str = "templates/jwt_auth";

/// Files of the jwt template written by hand, never by the generator.
pub const JWT_OWNS: &[&str] = &["README.md.liquid", "tests/scopes.rs"];

/// One replacement in one file of the source.
#[derive(Debug)]
pub struct Edit {
    /// The file, relative to the template's root.
    pub file: &'static str,
    /// Text that occurs exactly once in the source file.
    pub from: &'static str,
    /// What the jwt file has instead.
    pub to: &'static str,
}

/// Everything the jwt service says or does differently, outside the files
/// it owns.
pub const JWT_EDITS: &[Edit] = &[
    Edit {
        file: "Cargo.toml.liquid",
        from: r#"description = "An axum service with OAuth2 password-flow login, scopes, roles and permissions."
"#,
        to: r#"description = "An axum service with JWT login, refresh tokens, roles and permissions."
"#,
    },
    Edit {
        file: "cargo-generate.toml",
        from: r#"# A cargo-generate template (`cargo generate --path templates/oauth2_flow --name my-api`).
"#,
        to: r#"# A cargo-generate template (`cargo generate --path templates/jwt_auth --name my-api`).
"#,
    },
    Edit {
        file: "src/lib.rs",
        from: r#"/// Tokens carry OAuth2 scopes (RFC 9068 `scope`), and routes require them.
pub const SCOPES: ScopeMode = ScopeMode::Scoped;
"#,
        to: r#"/// Tokens carry no scopes: a valid token is enough where the oauth2
/// template asks for a scope; roles and permissions still apply.
pub const SCOPES: ScopeMode = ScopeMode::Unscoped;
"#,
    },
    Edit {
        file: "src/policy.rs",
        from: r#"//! Who may do what: this service's scopes, roles and permissions, and the
//! marker types its routes name in their signatures
//! (`RequireScopes<ReadItems>`, `RequirePermission<DeleteItems>`; the
//! account routes' `ReadMe` and `Admin` come with auth-kit).
"#,
        to: r#"//! Who may do what: this service's roles and permissions, and the marker
//! types its routes name in their signatures
//! (`RequirePermission<DeleteItems>`; the admin routes' `Admin` comes with
//! auth-kit). Its tokens carry no scopes (`SCOPES` in lib.rs): the scopes
//! and scope markers below are there for a switch to `ScopeMode::Scoped`,
//! and are checked all the same.
"#,
    },
    Edit {
        file: "src/routes/account.rs",
        from: r#"use auth_kit::extract::standard::ReadMe;
"#,
        to: r#""#,
    },
    Edit {
        file: "src/routes/account.rs",
        from: r#"use auth_kit::{ApiError, ErrorBody, RequireScopes};
"#,
        to: r#"use auth_kit::{ApiError, CurrentUser, ErrorBody};
"#,
    },
    Edit {
        file: "src/routes/account.rs",
        from: r#"/// Changes your password (scope `me`). Your other logins end; this one
/// stays. A wrong current password counts as a failed login.
#[utoipa::path(post, path = "/users/me/password", tag = "account", security(("oauth2" = ["me"])),
"#,
        to: r#"/// Changes your password. Your other logins end; this one stays. A wrong
/// current password counts as a failed login.
#[utoipa::path(post, path = "/users/me/password", tag = "account", security(("oauth2" = [])),
"#,
    },
    Edit {
        file: "src/routes/account.rs",
        from: r#"        (status = 403, description = "insufficient_scope, or a disabled user", body = ErrorBody),
"#,
        to: r#"        (status = 403, description = "A disabled user", body = ErrorBody),
"#,
    },
    Edit {
        file: "src/routes/account.rs",
        from: r#"    caller: RequireScopes<ReadMe>,
"#,
        to: r#"    caller: CurrentUser,
"#,
    },
    Edit {
        file: "src/routes/auth.rs",
        from: r#"/// `username`, `password` and optional `scope`, or `grant_type=refresh_token`.
"#,
        to: r#"/// `username` and `password`, or `grant_type=refresh_token`. This service
/// has no scopes: a `scope` field is ignored and the answer has none.
"#,
    },
    Edit {
        file: "src/routes/auth.rs",
        from: r#"        (status = 400, description = "invalid_request, invalid_grant, invalid_scope or unsupported_grant_type", body = ErrorBody),
"#,
        to: r#"        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = ErrorBody),
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"//! Items, the example resource: yours to list and create (scopes `items`,
//! `items:write`), up to ITEMS_MAX_PER_USER each; anyone's to delete with
//! the permission `items:delete` (and the scope `items:write`).
"#,
        to: r#"//! Items, the example resource: yours to list and create with any valid
//! token, up to ITEMS_MAX_PER_USER each; anyone's to delete with the
//! permission `items:delete`.
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"use auth_kit::{ApiError, ErrorBody, RequirePermission, RequireScopes};
"#,
        to: r#"use auth_kit::{ApiError, CurrentUser, ErrorBody, RequirePermission};
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"use crate::policy::{DeleteItems, ReadItems, WriteItems};
"#,
        to: r#"use crate::policy::DeleteItems;
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"/// Your items by id, a page at a time (scope `items`).
"#,
        to: r#"/// Your items by id, a page at a time.
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"    caller: RequireScopes<ReadItems>,
"#,
        to: r#"    caller: CurrentUser,
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"/// Creates an item you own (scope `items:write`).
"#,
        to: r#"/// Creates an item you own.
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"    caller: RequireScopes<WriteItems>,
"#,
        to: r#"    caller: CurrentUser,
"#,
    },
    Edit {
        file: "src/routes/items.rs",
        from: r#"/// per-user grant, and scope `items:write`). Authorization comes first:
/// 403 before 404.
"#,
        to: r#"/// per-user grant). Authorization comes first: 403 before 404.
"#,
    },
    Edit {
        file: "src/routes/mod.rs",
        from: r#"//! scopes, permission or role it needs), and `guarded_route!` documents its
"#,
        to: r#"//! permission or role it needs), and `guarded_route!` documents its
"#,
    },
    Edit {
        file: "src/routes/mod.rs",
        from: r#"        description: "OAuth2 password flow with scopes, roles and permissions. \
"#,
        to: r#"        description: "JWT access tokens and rotating refresh tokens, roles and permissions. \
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"//! Your profile, and user administration (role `admin`, and with scopes
//! also the scope `admin`, so a down-scoped admin token cannot administer).
"#,
        to: r#"//! Your profile, and user administration (role `admin`).
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"use auth_kit::extract::standard::{Admin, ReadMe};
"#,
        to: r#"use auth_kit::extract::standard::Admin;
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"use auth_kit::{ApiError, Authenticator, ErrorBody, RequireRole, RequireScopes};
"#,
        to: r#"use auth_kit::{ApiError, Authenticator, CurrentUser, ErrorBody, RequireRole};
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"/// Your own profile (scope `me`).
"#,
        to: r#"/// Your own profile.
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"pub async fn me(caller: RequireScopes<ReadMe>) -> Json<User> {
"#,
        to: r#"pub async fn me(caller: CurrentUser) -> Json<User> {
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"/// (role and scope `admin`).
"#,
        to: r#"/// (role `admin`).
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"/// Changes a user's role, disabled flag or per-user permissions (role and
/// scope `admin`). Absent or null fields are left alone; `permissions`
"#,
        to: r#"/// Changes a user's role, disabled flag or per-user permissions (role
/// `admin`). Absent or null fields are left alone; `permissions`
"#,
    },
    Edit {
        file: "src/routes/users.rs",
        from: r#"/// Deletes a user with their items and logins (role and scope `admin`); never the
"#,
        to: r#"/// Deletes a user with their items and logins (role `admin`); never the
"#,
    },
];

/// A jwt file that is not what the generator writes.
#[derive(Debug, PartialEq, Eq)]
pub enum Stale {
    /// The file's content differs.
    Changed(PathBuf),
    /// The generator would write it; it is not there.
    Missing(PathBuf),
    /// It is there; the generator would not write it (nor does jwt own it).
    Extra(PathBuf),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Changed(p) => write!(f, "changed: {JWT}/{}", p.display()),
            Stale::Missing(p) => write!(f, "missing: {JWT}/{}", p.display()),
            Stale::Extra(p) => write!(f, "not generated: {JWT}/{}", p.display()),
        }
    }
}

/// `cargo xtask templates [--check]`.
pub fn run(args: &TemplatesArgs) -> Result<()> {
    let root = repo::root();
    let expected = generate(root)?;
    let stale = stale(root, &expected)?;
    let count = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    if args.check {
        if stale.is_empty() {
            println!("{JWT} is up to date with {SOURCE}");
            return Ok(());
        }
        for s in &stale {
            println!("{s}");
        }
        bail!(
            "{JWT} is not what `cargo xtask templates` writes from {SOURCE} ({}): run `cargo xtask templates`, or make the change in {SOURCE} (or in a file jwt owns) instead",
            count(stale.len())
        );
    }
    write(root, &expected, &stale)?;
    println!("{JWT}: {} written or removed", count(stale.len()));
    Ok(())
}

/// The jwt template's generated files, as the generator writes them from
/// the source at `root`: relative path to content.
pub fn generate(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let source = root.join(SOURCE);
    let mut out = BTreeMap::new();
    for path in files_of(&source)?.all() {
        if is_owned(&path) {
            continue;
        }
        let bytes = fs::read(source.join(&path))
            .with_context(|| format!("cannot read {SOURCE}/{}", path.display()))?;
        out.insert(path, bytes);
    }
    for edit in JWT_EDITS {
        let Some(bytes) = out.get_mut(Path::new(edit.file)) else {
            bail!(
                "an edit names {SOURCE}/{}, which the generator does not copy: fix JWT_EDITS in xtask/src/templates.rs",
                edit.file
            );
        };
        let text = std::str::from_utf8(bytes)
            .with_context(|| format!("{SOURCE}/{} is not UTF-8", edit.file))?;
        let found = text.matches(edit.from).count();
        if found != 1 {
            bail!(
                "{SOURCE}/{}: an edit's text occurs {found} times, not once, so the jwt file cannot be written; fix its entry in JWT_EDITS (xtask/src/templates.rs):\n{}",
                edit.file,
                edit.from
            );
        }
        *bytes = text.replacen(edit.from, edit.to, 1).into_bytes();
    }
    Ok(out)
}

/// How the jwt tree at `root` differs from `expected` (see [`generate`]).
pub fn stale(root: &Path, expected: &BTreeMap<PathBuf, Vec<u8>>) -> Result<Vec<Stale>> {
    let target = root.join(JWT);
    let mut stale = Vec::new();
    for (path, bytes) in expected {
        match fs::read(target.join(path)) {
            Ok(found) if &found == bytes => {}
            Ok(_) => stale.push(Stale::Changed(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stale.push(Stale::Missing(path.clone()));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {JWT}/{}", path.display()));
            }
        }
    }
    for path in files_of(&target)?.all() {
        if !is_owned(&path) && !expected.contains_key(&path) {
            stale.push(Stale::Extra(path));
        }
    }
    Ok(stale)
}

/// Writes the stale files (and removes the ones not generated). Each file
/// is written whole through a temporary file and a rename, so an
/// interrupted run leaves whole files that `--check` reports. A file git
/// does not track is never removed: the run stops, naming it.
fn write(root: &Path, expected: &BTreeMap<PathBuf, Vec<u8>>, stale: &[Stale]) -> Result<()> {
    let target = root.join(JWT);
    let tracked = files_of(&target)?.tracked;
    if let Some(Stale::Extra(path)) = stale
        .iter()
        .find(|s| matches!(s, Stale::Extra(p) if !tracked.contains(p)))
    {
        bail!(
            "{JWT}/{} is not generated and git does not track it: move it away (or into {SOURCE}), then run `cargo xtask templates` again",
            path.display()
        );
    }
    for s in stale {
        match s {
            Stale::Changed(path) | Stale::Missing(path) => {
                let bytes = expected
                    .get(path)
                    .with_context(|| format!("{} is not generated", path.display()))?;
                write_whole(&target.join(path), bytes, &root.join(SOURCE).join(path))?;
            }
            Stale::Extra(path) => {
                let gone = target.join(path);
                fs::remove_file(&gone)
                    .with_context(|| format!("cannot remove {}", gone.display()))?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `to` through a temporary file in its folder, with the
/// mode of `like` (not the temporary file's 0600).
fn write_whole(to: &Path, bytes: &[u8], like: &Path) -> Result<()> {
    let folder = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    let mode = fs::metadata(like)
        .map(|m| m.permissions())
        .with_context(|| format!("cannot read {}", like.display()))?;
    fs::set_permissions(file.path(), mode)?;
    file.persist(to)
        .with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

fn is_owned(path: &Path) -> bool {
    JWT_OWNS.iter().any(|own| Path::new(own) == path)
}

/// The files of a template folder as git sees them, relative to it: the
/// tracked ones, and the new ones it does not ignore (a build's `.env`,
/// database or `target/` never count).
struct Files {
    tracked: BTreeSet<PathBuf>,
    untracked: BTreeSet<PathBuf>,
}

impl Files {
    fn all(&self) -> Vec<PathBuf> {
        self.tracked.union(&self.untracked).cloned().collect()
    }
}

fn files_of(dir: &Path) -> Result<Files> {
    let list = |args: &[&str]| -> Result<BTreeSet<PathBuf>> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["ls-files", "-z"])
            .args(args)
            .output()
            .context("cannot run git (the generator lists the templates' files with it)")?;
        if !output.status.success() {
            bail!(
                "git ls-files failed in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            // A tracked file deleted from the working tree is gone.
            .filter(|p| dir.join(p).is_file())
            .collect())
    };
    Ok(Files {
        tracked: list(&["--cached"])?,
        untracked: list(&["--others", "--exclude-standard"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_template_is_what_the_generator_writes() {
        let expected = generate(repo::root()).unwrap();
        let stale = stale(repo::root(), &expected).unwrap();
        let listed: Vec<String> = stale.iter().map(ToString::to_string).collect();
        assert!(
            stale.is_empty(),
            "{JWT} is stale: run `cargo xtask templates` (make the change in {SOURCE}, or in a file jwt owns):\n{}",
            listed.join("\n")
        );
    }

    #[test]
    fn the_jwt_service_has_no_scope_guard() {
        // What the edits are for: tokens without scopes, and no jwt handler
        // asking for one (with scoped tokens, `CurrentUser` would let a
        // token narrowed to `me` create items).
        let files = generate(repo::root()).unwrap();
        let lib = String::from_utf8_lossy(&files[Path::new("src/lib.rs")]).into_owned();
        assert!(
            lib.contains("pub const SCOPES: ScopeMode = ScopeMode::Unscoped;")
                && !lib.contains("ScopeMode::Scoped"),
            "the jwt service must issue and check no scopes"
        );
        for (path, bytes) in &files {
            if path.starts_with("src") {
                let text = String::from_utf8_lossy(bytes);
                assert!(
                    !text.contains("RequireScopes<"),
                    "{} asks for a scope",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn an_edit_that_no_longer_matches_stops_the_generator() {
        let scratch = tempfile::tempdir().unwrap();
        let init = Command::new("git")
            .args(["init", "-q"])
            .arg(scratch.path())
            .status()
            .unwrap();
        assert!(init.success());
        let source = scratch.path().join(SOURCE);
        for path in files_of(&repo::root().join(SOURCE)).unwrap().all() {
            let to = source.join(&path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo::root().join(SOURCE).join(&path), &to).unwrap();
        }
        let lib = source.join("src/lib.rs");
        let text = fs::read_to_string(&lib).unwrap();
        fs::write(
            &lib,
            text.replace("ScopeMode::Scoped;", "ScopeMode::Scoped ;"),
        )
        .unwrap();
        let err = generate(scratch.path()).unwrap_err().to_string();
        assert!(
            err.contains("src/lib.rs") && err.contains("0 times"),
            "{err}"
        );
    }
}
