//! The jwt template, assembled from its one source, `templates/oauth2_flow`.
//!
//! The jwt service is the oauth2 service without scopes: the same files
//! with the edits in [`JWT_EDITS`] (its handlers ask for `CurrentUser`
//! where oauth2's ask for a scope, and its docs say so), apart from the
//! files it owns ([`JWT_OWNS`]: its README, and `tests/scopes.rs`, which
//! tests what tokens without scopes do where oauth2's tests what scopes
//! do). Only those are committed under `templates/jwt_auth`: a change is
//! made once, in `oauth2_flow` (or in a file jwt owns), and no second copy
//! can drift. `cargo xtask new --strategy jwt` assembles the whole template
//! in a temporary folder and renders it from there; `cargo xtask templates`
//! writes it into `templates/jwt_auth` (git ignores the written files) for
//! reading it or for `cargo generate --path templates/jwt_auth`.
//!
//! Every edit must match its file exactly once: an edit that no longer
//! matches stops the assembly, naming the file and the text, instead of
//! leaving a scope in the jwt service. `--check` (and this module's tests,
//! so `cargo xtask test` and CI) fails when an edit does not match or when
//! git tracks a file of `templates/jwt_auth` that jwt does not own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::repo;

/// Arguments of `cargo xtask templates`.
#[derive(clap::Args, Debug)]
pub struct TemplatesArgs {
    /// Write nothing: fail when an edit no longer matches its source, or
    /// when git tracks a jwt file that the assembly writes.
    #[arg(long)]
    pub check: bool,
    /// Where to write the jwt template (default: templates/jwt_auth, where
    /// git ignores every file jwt does not own).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The one source.
pub const SOURCE: &str = "templates/oauth2_flow";
/// The template assembled from it.
pub const JWT: &str = "templates/jwt_auth";

/// Files of the jwt template written by hand, and the only ones git tracks
/// under [`JWT`].
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
        to: r#"# A cargo-generate template, assembled from templates/oauth2_flow (`cargo xtask
# templates`, then `cargo generate --path templates/jwt_auth --name my-api`).
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

/// `cargo xtask templates [--check] [--out DIR]`.
pub fn run(args: &TemplatesArgs) -> Result<()> {
    let root = repo::root();
    let generated = generate(root)?;
    let committed = committed_generated_files(root)?;
    if !committed.is_empty() {
        bail!(
            "git tracks files of {JWT} that are assembled from {SOURCE}: {}. Make the change in {SOURCE} (or add the file to JWT_OWNS in xtask/src/templates.rs), then `git rm --cached` them",
            committed.join(", ")
        );
    }
    if args.check {
        println!("{JWT}: every edit matches {SOURCE}, and git tracks only the files jwt owns");
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| root.join(JWT));
    if out == root.join(JWT) {
        remove_stale(&out, &generated)?;
    } else {
        copy_owned(root, &out)?;
    }
    for (path, bytes) in &generated {
        write_whole(&out.join(path), bytes, &root.join(SOURCE).join(path))?;
    }
    println!(
        "wrote the jwt template into {} ({} files from {SOURCE})",
        out.display(),
        generated.len()
    );
    Ok(())
}

/// The whole jwt template (assembled files and the ones jwt owns) in a new
/// temporary folder, removed when the returned value is dropped.
pub fn assemble(root: &Path) -> Result<tempfile::TempDir> {
    let folder = tempfile::Builder::new()
        .prefix("jwt_auth-")
        .tempdir()
        .context("cannot create a temporary folder for the jwt template")?;
    copy_owned(root, folder.path())?;
    for (path, bytes) in generate(root)? {
        write_whole(
            &folder.path().join(&path),
            &bytes,
            &root.join(SOURCE).join(&path),
        )?;
    }
    Ok(folder)
}

/// The jwt template's assembled files, as written from the source at
/// `root`: relative path to content.
pub fn generate(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let source = root.join(SOURCE);
    let mut out = BTreeMap::new();
    for path in files_of(&source, &[])? {
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
                "an edit names {SOURCE}/{}, which the assembly does not copy: fix JWT_EDITS in xtask/src/templates.rs",
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

/// Files git tracks under [`JWT`] that jwt does not own: a generated file
/// committed by mistake, which would be a second copy to keep in step.
fn committed_generated_files(root: &Path) -> Result<Vec<String>> {
    Ok(files_of(&root.join(JWT), &["--cached"])?
        .into_iter()
        .filter(|p| !is_owned(p))
        .map(|p| format!("{JWT}/{}", p.display()))
        .collect())
}

/// Removes the files a previous run wrote into `templates/jwt_auth` that
/// the assembly no longer writes (git ignores them; the owned files, which
/// it tracks, are never touched).
fn remove_stale(target: &Path, generated: &BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    for path in files_of(target, &["--others", "--ignored", "--exclude-standard"])? {
        if !is_owned(&path) && !generated.contains_key(&path) {
            let gone = target.join(&path);
            fs::remove_file(&gone).with_context(|| format!("cannot remove {}", gone.display()))?;
        }
    }
    Ok(())
}

/// Copies the files jwt owns into `out`.
fn copy_owned(root: &Path, out: &Path) -> Result<()> {
    for own in JWT_OWNS {
        let from = root.join(JWT).join(own);
        let bytes = fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        write_whole(&out.join(own), &bytes, &from)?;
    }
    Ok(())
}

/// Writes `bytes` to `to` through a temporary file in its folder, with the
/// mode of `like` (not the temporary file's 0600), so an interrupted run
/// leaves whole files.
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

/// The files of a template folder as git lists them with `which`, relative
/// to it; with no flags, the tracked ones and the new ones it does not
/// ignore (a build's `.env`, database or `target/` never count).
fn files_of(dir: &Path, which: &[&str]) -> Result<BTreeSet<PathBuf>> {
    let list = |args: &[&str]| -> Result<BTreeSet<PathBuf>> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["ls-files", "-z"])
            .args(args)
            .output()
            .context("cannot run git (the jwt template's files are listed with it)")?;
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
    if which.is_empty() {
        let mut all = list(&["--cached"])?;
        all.extend(list(&["--others", "--exclude-standard"])?);
        Ok(all)
    } else {
        list(which)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_tracks_only_the_files_jwt_owns() {
        let committed = committed_generated_files(repo::root()).unwrap();
        assert!(
            committed.is_empty(),
            "assembled from {SOURCE}, so not to be committed (make the change in {SOURCE}, or in a file jwt owns): {committed:?}"
        );
        let owned = files_of(&repo::root().join(JWT), &["--cached"]).unwrap();
        assert_eq!(owned.len(), JWT_OWNS.len(), "{owned:?}");
    }

    #[test]
    fn the_assembled_template_is_complete() {
        let folder = assemble(repo::root()).unwrap();
        for path in
            JWT_OWNS
                .iter()
                .chain(&["cargo-generate.toml", "Cargo.toml.liquid", "src/lib.rs"])
        {
            assert!(folder.path().join(path).is_file(), "{path} is missing");
        }
        let manifest = fs::read_to_string(folder.path().join("cargo-generate.toml")).unwrap();
        assert!(manifest.contains("templates/jwt_auth"), "{manifest}");
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
    fn an_edit_that_no_longer_matches_stops_the_assembly() {
        let scratch = tempfile::tempdir().unwrap();
        let init = Command::new("git")
            .args(["init", "-q"])
            .arg(scratch.path())
            .status()
            .unwrap();
        assert!(init.success());
        let source = scratch.path().join(SOURCE);
        for path in files_of(&repo::root().join(SOURCE), &[]).unwrap() {
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
