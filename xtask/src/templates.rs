//! The templates assembled from the one source, `templates/oauth2_flow`.
//!
//! The jwt service is the oauth2 service without scopes: the same files
//! with the edits in [`JWT_EDITS`] (its handlers ask for `CurrentUser`
//! where oauth2's ask for a scope, and its docs say so), apart from the
//! files it owns (its README, and `tests/scopes.rs`, which tests what
//! tokens without scopes do where oauth2's tests what scopes do). The
//! supabase service owns its files but the ones it shares word for word
//! with oauth2 ([`SUPABASE`]: what a client may send to create an item,
//! and its rules, which the contract gives both services).
//!
//! git tracks only the files a template owns: a change is made once, in
//! `oauth2_flow` (or in a file the template owns), and no second copy can
//! drift. `cargo xtask new` assembles the whole template in a temporary
//! folder and renders it from there; `cargo xtask templates` writes the
//! taken files into `templates/<name>` (git ignores them) for reading them
//! or for `cargo generate --path templates/<name>`, and replaces or removes
//! only files it wrote and nobody changed since.
//!
//! Every edit must match its file exactly once: an edit that no longer
//! matches stops the assembly, naming the file and the text, instead of
//! leaving a scope in the jwt service. `--check` (and this module's tests,
//! so `cargo xtask test` and CI) fails when an edit does not match, when a
//! taken file is missing from the source, or when git tracks a file a
//! template takes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::repo;

/// Arguments of `cargo xtask templates`.
#[derive(clap::Args, Debug)]
pub struct TemplatesArgs {
    /// Write nothing: fail when an edit no longer matches its source, when
    /// a taken file is missing, or when git tracks a file a template takes.
    #[arg(long)]
    pub check: bool,
    /// Write one whole template (its own files and the taken ones) into DIR
    /// instead (with --template).
    #[arg(long, value_name = "DIR", requires = "template")]
    pub out: Option<PathBuf>,
    /// The template --out writes.
    #[arg(long, value_enum, requires = "out")]
    pub template: Option<Assembled>,
}

/// A template written, in whole or in part, from [`SOURCE`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assembled {
    /// `templates/jwt_auth`.
    Jwt,
    /// `templates/supabase_auth`.
    Supabase,
}

impl Assembled {
    /// How it is written.
    pub fn assembly(self) -> &'static Assembly {
        match self {
            Assembled::Jwt => &JWT,
            Assembled::Supabase => &SUPABASE,
        }
    }
}

/// The one source.
pub const SOURCE: &str = "templates/oauth2_flow";

/// Which files of [`SOURCE`] a template takes.
#[derive(Debug)]
pub enum Takes {
    /// Every file but these, which it owns.
    AllBut(&'static [&'static str]),
    /// Only these; it owns the rest of its folder.
    Only(&'static [&'static str]),
}

/// How one template is written from [`SOURCE`].
#[derive(Debug)]
pub struct Assembly {
    /// The strategy, as messages name it.
    pub name: &'static str,
    /// Its folder, relative to the repository's root.
    pub dir: &'static str,
    /// The files it takes from the source.
    pub takes: Takes,
    /// What it changes in them.
    pub edits: &'static [Edit],
    /// What the result must hold, checked on every assembly.
    pub check: fn(&BTreeMap<PathBuf, Vec<u8>>) -> Result<()>,
}

/// The jwt template: the oauth2 one without scopes.
pub const JWT: Assembly = Assembly {
    name: "jwt",
    dir: "templates/jwt_auth",
    takes: Takes::AllBut(&["README.md.liquid", "tests/scopes.rs"]),
    edits: JWT_EDITS,
    check: check_unscoped,
};

/// The supabase template: its own but for the files it shares word for
/// word with oauth2.
pub const SUPABASE: Assembly = Assembly {
    name: "supabase",
    dir: "templates/supabase_auth",
    takes: Takes::Only(&["src/items/new_item.rs"]),
    edits: &[],
    check: |_| Ok(()),
};

/// Every assembled template.
pub const ASSEMBLED: [&Assembly; 2] = [&JWT, &SUPABASE];

/// One replacement in one file of the source.
#[derive(Debug)]
pub struct Edit {
    /// The file, relative to the template's root.
    pub file: &'static str,
    /// Text that occurs exactly once in the source file.
    pub from: &'static str,
    /// What the assembled file has instead.
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
        file: "cargo-generate.toml",
        from: r#"include = ["Cargo.toml", "README.md", "tests/binary.rs"]
"#,
        to: r#"include = ["Cargo.toml", "README.md", "tests/binary.rs"]
# What `cargo xtask templates` records of the files it wrote: not the project's.
ignore = [".assembled"]
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

impl Assembly {
    /// Whether the template takes `path` (relative to the source) from the
    /// source, rather than owning it.
    pub fn takes(&self, path: &Path) -> bool {
        let listed = |list: &[&str]| list.iter().any(|p| Path::new(p) == path);
        match self.takes {
            Takes::AllBut(owned) => !listed(owned),
            Takes::Only(taken) => listed(taken),
        }
    }

    /// The files the template owns, as they are in `root`: every file of
    /// its folder that git does not ignore and it does not take.
    /// Fails when a file it lists as its own is missing (a jwt stamp
    /// without `tests/scopes.rs` would still build and pass, minus the
    /// tests of what its tokens may do).
    fn owned(&self, root: &Path) -> Result<BTreeSet<PathBuf>> {
        let mut files = files_of(&root.join(self.dir))?;
        files.retain(|p| !self.takes(p) && p != Path::new(RECORD));
        if let Takes::AllBut(listed) = self.takes {
            let missing: Vec<&str> = listed
                .iter()
                .copied()
                .filter(|p| !files.contains(Path::new(p)))
                .collect();
            if !missing.is_empty() {
                bail!(
                    "{}: {} missing; the {} template owns it, and no stamp is made without it (restore it with `git checkout -- {}`)",
                    self.dir,
                    missing.join(", "),
                    self.name,
                    self.dir
                );
            }
        }
        Ok(files)
    }
}

/// `cargo xtask templates [--check] [--out DIR --template T]`.
pub fn run(args: &TemplatesArgs) -> Result<()> {
    let root = repo::root();
    if args.check {
        for assembly in ASSEMBLED {
            generate(root, assembly)?;
            let committed = committed_taken_files(root, assembly)?;
            if !committed.is_empty() {
                bail!(
                    "git tracks files of {} that are assembled from {SOURCE}: {}. Make the change in {SOURCE} (or let the template own the file in xtask/src/templates.rs), then `git rm --cached` them",
                    assembly.dir,
                    committed.join(", ")
                );
            }
            println!(
                "{}: every edit matches {SOURCE}, and git tracks only the files {} owns",
                assembly.dir, assembly.name
            );
        }
        return Ok(());
    }
    if let (Some(out), Some(template)) = (&args.out, args.template) {
        let assembly = template.assembly();
        let in_place = check_out(root, assembly, out)?;
        fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let mut files = generate(root, assembly)?;
        if !in_place {
            for own in assembly.owned(root)? {
                let from = root.join(assembly.dir).join(&own);
                let bytes =
                    fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
                files.insert(own, bytes);
            }
        }
        return write_template(root, assembly, out, in_place, &files);
    }
    for assembly in ASSEMBLED {
        let files = generate(root, assembly)?;
        write_template(root, assembly, &root.join(assembly.dir), true, &files)?;
    }
    Ok(())
}

/// Whether `out` is the template's own folder; fails, before anything is
/// written, when it is another folder under `templates/` (a copy there
/// would become part of a template and of every stamp) or a folder that
/// holds files an earlier `--out` did not write.
fn check_out(root: &Path, assembly: &Assembly, out: &Path) -> Result<bool> {
    let canonical = |path: &Path| {
        fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))
    };
    // `..` is resolved by the file system only where the path exists: a
    // new folder named through it could land anywhere.
    if out
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        bail!("--out {}: name the folder without `..`", out.display());
    }
    // The nearest existing folder says where a new one would be.
    let existing = out
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    let below = canonical(existing)?.join(out.strip_prefix(existing).unwrap_or(out));
    if below == canonical(&root.join(assembly.dir))? {
        return Ok(true);
    }
    if below.starts_with(canonical(&root.join("templates"))?) {
        bail!(
            "--out {}: not inside templates/, where the copy would join a template and every stamp; choose a folder outside it (`cargo xtask templates` without --out writes the templates' own folders)",
            out.display()
        );
    }
    let holds_other_files = out.is_dir()
        && !out.join(RECORD).is_file()
        && fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_some();
    if holds_other_files {
        bail!(
            "--out {}: the folder holds files `cargo xtask templates` did not write; choose an empty or new folder",
            out.display()
        );
    }
    Ok(false)
}

fn write_template(
    root: &Path,
    assembly: &Assembly,
    out: &Path,
    in_place: bool,
    files: &BTreeMap<PathBuf, Vec<u8>>,
) -> Result<()> {
    let like = |path: &Path| {
        if assembly.takes(path) {
            root.join(SOURCE).join(path)
        } else {
            root.join(assembly.dir).join(path)
        }
    };
    let hint = format!(
        "make {}'s changes in {SOURCE} (or in a file it owns), move these files away, or choose an empty --out",
        assembly.name
    );
    // In its own folder, a file the template no longer takes is its own
    // now (committed): left alone, not removed.
    let may_remove = |path: &Path| !in_place || assembly.takes(path);
    let written = write_recorded(out, files, &like, &may_remove, &hint)?;
    println!(
        "wrote the {} template's assembled files into {} ({written} of {} files changed)",
        assembly.name,
        out.display(),
        files.len()
    );
    Ok(())
}

/// The record, in the folder `cargo xtask templates` writes, of what it
/// wrote there: `sha256  path` per line.
const RECORD: &str = ".assembled";

/// Writes `files` into `out`, and removes what an earlier run wrote there
/// that is no longer assembled; returns how many files changed. Only a file
/// this command wrote and nobody changed since (its SHA-256 is in
/// [`RECORD`]) is replaced or removed: any other file in the way stops the
/// run before anything is written, so `--out` at the wrong folder, or a
/// change made by hand to a written file, loses nothing. Files it did not
/// write and need not touch, or that `may_remove` refuses, are left alone;
/// `hint` says what to do when the run stops.
fn write_recorded(
    out: &Path,
    files: &BTreeMap<PathBuf, Vec<u8>>,
    like: &dyn Fn(&Path) -> PathBuf,
    may_remove: &dyn Fn(&Path) -> bool,
    hint: &str,
) -> Result<usize> {
    let recorded = read_record(out)?;
    let is_ours = |path: &Path, found: &[u8]| recorded.get(path) == Some(&sha256(found));
    let mut refused = Vec::new();
    let mut changed = Vec::new();
    for (path, bytes) in files {
        match read_if_present(&out.join(path))? {
            Some(found) if &found == bytes => {}
            Some(found) if !is_ours(path, &found) => refused.push(path.clone()),
            _ => changed.push(path.clone()),
        }
    }
    let mut gone = Vec::new();
    for path in recorded
        .keys()
        .filter(|p| !files.contains_key(*p) && may_remove(p))
    {
        match read_if_present(&out.join(path))? {
            Some(found) if is_ours(path, &found) => gone.push(path.clone()),
            Some(_) => refused.push(path.clone()),
            None => {}
        }
    }
    if !refused.is_empty() {
        let listed: Vec<String> = refused.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{}: {} not written by `cargo xtask templates`, or changed since; nothing was written: {hint}",
            out.display(),
            listed.join(", ")
        );
    }
    for path in &gone {
        let at = out.join(path);
        fs::remove_file(&at).with_context(|| format!("cannot remove {}", at.display()))?;
    }
    for path in &changed {
        write_whole(&out.join(path), &files[path], &like(path))?;
    }
    let record: String = files
        .iter()
        .map(|(path, bytes)| format!("{}  {}\n", sha256(bytes), path.display()))
        .collect();
    write_whole(
        &out.join(RECORD),
        record.as_bytes(),
        &like(Path::new("cargo-generate.toml")),
    )?;
    Ok(changed.len() + gone.len())
}

fn read_record(out: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let Some(bytes) = read_if_present(&out.join(RECORD))? else {
        return Ok(BTreeMap::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut record = BTreeMap::new();
    for (sha, path) in text.lines().filter_map(|line| line.split_once("  ")) {
        let path = PathBuf::from(path);
        // Only paths below `out`: a record copied or edited by hand must
        // not make a run remove a file elsewhere.
        let inside = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            bail!(
                "{}: it names {}, which is not a path inside {}; remove the record (the files it lists are then left alone)",
                out.join(RECORD).display(),
                path.display(),
                out.display()
            );
        }
        record.insert(path, sha.to_owned());
    }
    Ok(record)
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The whole template (its own files and the assembled ones) in a new
/// temporary folder, removed when the returned value is dropped.
pub fn assemble(root: &Path, assembly: &Assembly) -> Result<tempfile::TempDir> {
    let folder = tempfile::Builder::new()
        .prefix(&format!("{}-", assembly.name))
        .tempdir()
        .with_context(|| {
            format!(
                "cannot create a temporary folder for the {} template",
                assembly.name
            )
        })?;
    for own in assembly.owned(root)? {
        let from = root.join(assembly.dir).join(&own);
        let bytes = fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        write_whole(&folder.path().join(&own), &bytes, &from)?;
    }
    for (path, bytes) in generate(root, assembly)? {
        write_whole(
            &folder.path().join(&path),
            &bytes,
            &root.join(SOURCE).join(&path),
        )?;
    }
    Ok(folder)
}

/// The template's assembled files, as written from the source at `root`:
/// relative path to content. Fails when a taken file is missing, when an
/// edit does not match exactly once, or when the result fails the
/// template's check.
pub fn generate(root: &Path, assembly: &Assembly) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let source = root.join(SOURCE);
    let mut out = BTreeMap::new();
    for path in files_of(&source)? {
        if !assembly.takes(&path) {
            continue;
        }
        let bytes = fs::read(source.join(&path))
            .with_context(|| format!("cannot read {SOURCE}/{}", path.display()))?;
        out.insert(path, bytes);
    }
    if let Takes::Only(taken) = assembly.takes {
        let missing: Vec<&str> = taken
            .iter()
            .copied()
            .filter(|p| !out.contains_key(Path::new(p)))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the {} template takes {} from {SOURCE}, which has no such file: move it back, or change what it takes in xtask/src/templates.rs",
                assembly.name,
                missing.join(", ")
            );
        }
    }
    for edit in assembly.edits {
        let Some(bytes) = out.get_mut(Path::new(edit.file)) else {
            bail!(
                "an edit names {SOURCE}/{}, which the {} assembly does not copy: fix its edits in xtask/src/templates.rs",
                edit.file,
                assembly.name
            );
        };
        let text = std::str::from_utf8(bytes)
            .with_context(|| format!("{SOURCE}/{} is not UTF-8", edit.file))?;
        let found = text.matches(edit.from).count();
        if found != 1 {
            bail!(
                "{SOURCE}/{}: an edit's text occurs {found} times, not once, so the {} file cannot be written; fix its entry in xtask/src/templates.rs:\n{}",
                edit.file,
                assembly.name,
                edit.from
            );
        }
        *bytes = text.replacen(edit.from, edit.to, 1).into_bytes();
    }
    (assembly.check)(&out)?;
    Ok(out)
}

/// What the jwt edits are for: the jwt service issues no scopes and no
/// handler asks for one (with scoped tokens, `CurrentUser` would let a
/// token narrowed to `me` create items). Checked on every assembly, so a
/// stamp from an older or forked checkout (`--from`) is held to it too.
fn check_unscoped(files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    let lib = files
        .get(Path::new("src/lib.rs"))
        .map(|b| String::from_utf8_lossy(b))
        .unwrap_or_default();
    if !lib.contains("pub const SCOPES: ScopeMode = ScopeMode::Unscoped;")
        || lib.contains("ScopeMode::Scoped")
    {
        bail!(
            "the assembled jwt src/lib.rs does not set `SCOPES` to `ScopeMode::Unscoped`: fix JWT_EDITS in xtask/src/templates.rs"
        );
    }
    for (path, bytes) in files {
        if path.starts_with("src") && String::from_utf8_lossy(bytes).contains("RequireScopes<") {
            bail!(
                "the assembled jwt {} still asks for a scope (`RequireScopes`): add an edit to JWT_EDITS in xtask/src/templates.rs",
                path.display()
            );
        }
    }
    Ok(())
}

/// Files git tracks in the template's folder that it takes from the
/// source: an assembled file committed by mistake, which would be a second
/// copy to keep in step.
fn committed_taken_files(root: &Path, assembly: &Assembly) -> Result<Vec<String>> {
    let dir = root.join(assembly.dir);
    let output = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["ls-files", "-z", "--cached"])
        .output()
        .context("cannot run git (it says which template files are committed)")?;
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
        .filter(|p| assembly.takes(p) || p == Path::new(RECORD))
        .map(|p| format!("{}/{}", assembly.dir, p.display()))
        .collect())
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

/// The files of a template folder, relative to it: every file below it
/// that the `.gitignore` files in force (the folder's and its parents')
/// do not ignore, so a build's `.env`, database or `target/` never count.
/// Read from the disk, not from git, so a checkout without git (an
/// archive) stamps too.
fn files_of(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    let walk = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .git_global(false)
        .git_exclude(false)
        .build();
    for entry in walk {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let path = entry.path().strip_prefix(dir).with_context(|| {
                format!("{} is not below {}", entry.path().display(), dir.display())
            })?;
            files.insert(path.to_owned());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_tracks_only_the_files_a_template_owns() {
        for assembly in ASSEMBLED {
            let committed = committed_taken_files(repo::root(), assembly).unwrap();
            assert!(
                committed.is_empty(),
                "assembled from {SOURCE}, so not to be committed (make the change in {SOURCE}, or in a file {} owns): {committed:?}",
                assembly.name
            );
        }
    }

    #[test]
    fn the_assembled_templates_are_complete() {
        for assembly in ASSEMBLED {
            let folder = assemble(repo::root(), assembly).unwrap();
            let owned = assembly.owned(repo::root()).unwrap();
            assert!(owned.contains(Path::new("README.md.liquid")), "{owned:?}");
            let expected = ["cargo-generate.toml", "Cargo.toml.liquid", "src/lib.rs"];
            for path in owned
                .iter()
                .map(PathBuf::as_path)
                .chain(expected.map(Path::new))
            {
                assert!(
                    folder.path().join(path).is_file(),
                    "{}: {} is missing",
                    assembly.name,
                    path.display()
                );
            }
            assert!(!folder.path().join(RECORD).exists());
            let manifest = fs::read_to_string(folder.path().join("cargo-generate.toml")).unwrap();
            assert!(manifest.contains(assembly.dir), "{manifest}");
            assert!(manifest.contains("ignore = [\".assembled\"]"), "{manifest}");
        }
        let supabase = assemble(repo::root(), &SUPABASE).unwrap();
        assert_eq!(
            fs::read(supabase.path().join("src/items/new_item.rs")).unwrap(),
            fs::read(repo::root().join(SOURCE).join("src/items/new_item.rs")).unwrap()
        );
        // Nothing a build or a run leaves in the source is copied.
        let source = files_of(&repo::root().join(SOURCE)).unwrap();
        assert!(
            source
                .iter()
                .all(|p| !p.starts_with("target") && p != Path::new(".env")),
            "{source:?}"
        );
    }

    #[test]
    fn the_jwt_service_has_no_scope_guard() {
        let mut files = generate(repo::root(), &JWT).unwrap();
        assert!(check_unscoped(&files).is_ok());
        let items = files.get_mut(Path::new("src/routes/items.rs")).unwrap();
        items.extend_from_slice(b"\nfn f(_: RequireScopes<ReadItems>) {}\n");
        let err = check_unscoped(&files).unwrap_err().to_string();
        assert!(err.contains("src/routes/items.rs"), "{err}");
    }

    /// A copy of the source in a scratch root.
    fn scratch_source() -> tempfile::TempDir {
        let scratch = tempfile::tempdir().unwrap();
        let source = scratch.path().join(SOURCE);
        for path in files_of(&repo::root().join(SOURCE)).unwrap() {
            let to = source.join(&path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo::root().join(SOURCE).join(&path), &to).unwrap();
        }
        scratch
    }

    /// A scratch root with the source and the template's own files, as
    /// they are here.
    fn scratch_root(assembly: &Assembly) -> tempfile::TempDir {
        let scratch = scratch_source();
        for path in assembly.owned(repo::root()).unwrap() {
            let to = scratch.path().join(assembly.dir).join(&path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo::root().join(assembly.dir).join(&path), &to).unwrap();
        }
        scratch
    }

    #[test]
    fn a_file_jwt_owns_missing_stops_the_assembly() {
        let scratch = scratch_root(&JWT);
        assert!(assemble(scratch.path(), &JWT).is_ok());
        fs::remove_file(scratch.path().join(JWT.dir).join("tests/scopes.rs")).unwrap();
        let err = assemble(scratch.path(), &JWT).unwrap_err().to_string();
        assert!(err.contains("tests/scopes.rs missing"), "{err}");
    }

    #[test]
    fn the_record_of_a_written_template_is_not_part_of_it() {
        let scratch = scratch_root(&SUPABASE);
        let record = scratch.path().join(SUPABASE.dir).join(RECORD);
        fs::write(&record, "0  src/items/new_item.rs\n").unwrap();
        assert!(
            files_of(&scratch.path().join(SUPABASE.dir))
                .unwrap()
                .contains(Path::new(RECORD))
        );
        let folder = assemble(scratch.path(), &SUPABASE).unwrap();
        assert!(!folder.path().join(RECORD).exists());
        assert!(folder.path().join("src/items/new_item.rs").is_file());
    }

    #[test]
    fn out_is_refused_inside_templates_and_in_a_folder_of_other_files() {
        let root = repo::root();
        let inside = root.join(SUPABASE.dir).join("whole");
        let err = check_out(root, &SUPABASE, &inside).unwrap_err().to_string();
        assert!(err.contains("not inside templates/"), "{err}");
        assert!(!inside.exists());
        let around = PathBuf::from(format!("/tmp/no-such-folder/..{}", inside.display()));
        let err = check_out(root, &SUPABASE, &around).unwrap_err().to_string();
        assert!(err.contains("without `..`"), "{err}");
        assert!(check_out(root, &SUPABASE, &root.join(SUPABASE.dir)).unwrap());
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(!check_out(root, &SUPABASE, &elsewhere.path().join("new")).unwrap());
        assert!(!check_out(root, &SUPABASE, elsewhere.path()).unwrap());
        fs::write(elsewhere.path().join("notes"), "mine").unwrap();
        let err = check_out(root, &SUPABASE, elsewhere.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not write"), "{err}");
    }

    #[test]
    fn a_record_naming_a_path_outside_its_folder_is_refused() {
        let out = tempfile::tempdir().unwrap();
        fs::write(out.path().join(RECORD), "0  ../elsewhere\n").unwrap();
        let err = read_record(out.path()).unwrap_err().to_string();
        assert!(err.contains("not a path inside"), "{err}");
    }

    #[test]
    fn a_taken_file_missing_from_the_source_stops_the_assembly() {
        let scratch = scratch_source();
        assert!(generate(scratch.path(), &SUPABASE).is_ok());
        fs::remove_file(scratch.path().join(SOURCE).join("src/items/new_item.rs")).unwrap();
        let err = generate(scratch.path(), &SUPABASE).unwrap_err().to_string();
        assert!(
            err.contains("supabase template takes src/items/new_item.rs"),
            "{err}"
        );
    }

    #[test]
    fn an_edit_that_no_longer_matches_stops_the_assembly() {
        let scratch = scratch_source();
        let source = scratch.path().join(SOURCE);
        let lib = source.join("src/lib.rs");
        let text = fs::read_to_string(&lib).unwrap();
        fs::write(
            &lib,
            text.replace("ScopeMode::Scoped;", "ScopeMode::Scoped ;"),
        )
        .unwrap();
        let err = generate(scratch.path(), &JWT).unwrap_err().to_string();
        assert!(
            err.contains("src/lib.rs") && err.contains("0 times"),
            "{err}"
        );
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<PathBuf, Vec<u8>> {
        pairs
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn only_files_it_wrote_and_nobody_changed_are_replaced_or_removed() {
        let out = tempfile::tempdir().unwrap();
        let like_file = out.path().join("like");
        fs::write(&like_file, "").unwrap();
        let like = |_: &Path| like_file.clone();
        let read = |p: &str| fs::read_to_string(out.path().join(p)).unwrap();

        write_recorded(
            out.path(),
            &files(&[("a", "1"), ("b", "1")]),
            &like,
            &|_| true,
            "",
        )
        .unwrap();
        fs::write(out.path().join("notes"), "mine").unwrap();
        // Replaced and removed: both were written here and are unchanged.
        write_recorded(out.path(), &files(&[("a", "2")]), &like, &|_| true, "").unwrap();
        assert_eq!(read("a"), "2");
        assert!(!out.path().join("b").exists());
        assert_eq!(
            read("notes"),
            "mine",
            "a file it did not write is left alone"
        );

        // Changed by hand since: refused, and nothing is written.
        fs::write(out.path().join("a"), "by hand").unwrap();
        let err = write_recorded(
            out.path(),
            &files(&[("a", "3"), ("c", "3")]),
            &like,
            &|_| true,
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(": a not written"), "{err}");
        assert_eq!(read("a"), "by hand");
        assert!(!out.path().join("c").exists());

        // Not written by it (a wrong --out): refused.
        let err = write_recorded(out.path(), &files(&[("notes", "x")]), &like, &|_| true, "")
            .unwrap_err()
            .to_string();
        // `a`, changed by hand above and no longer assembled, is kept too.
        assert!(err.contains(": notes, a not written"), "{err}");
        assert_eq!(read("notes"), "mine");

        // A recorded file that may not be removed (in a template's own
        // folder, one it owns now) stays.
        fs::write(out.path().join("a"), "3").unwrap();
        write_recorded(out.path(), &files(&[("a", "3")]), &like, &|_| true, "").unwrap();
        write_recorded(out.path(), &files(&[]), &like, &|p| p != Path::new("a"), "").unwrap();
        assert_eq!(read("a"), "3");
    }
}
