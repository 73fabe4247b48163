//! `cargo xtask new --strategy <jwt|oauth2|supabase> --name <name> [--dest DIR] [--force]`
//!
//! 1. The template is assembled (jwt and supabase take files from
//!    `templates/oauth2_flow`: `crate::templates`) and rendered by the
//!    cargo-generate library, exactly as `cargo generate --path
//!    templates/<template> --name <name>` would after `cargo xtask
//!    templates` wrote the taken files.
//! 2. The project is completed into a standalone workspace: a copy of the
//!    kit (auth-kit, the operator tools auth-cli, and for supabase
//!    auth-kit-supabase and gotrue-stub, each manifest made self-contained
//!    and each crate with its tests; the contract, troubleshooting and
//!    deployment guides and, for jwt and oauth2, the account-lifecycle and
//!    operations guides: see `auth_cli::kit::kit_files`), the kit's
//!    provenance record (`.kit-stamp`: version, commit, SHA-256 per kit
//!    file), this repository's Cargo.lock, and a `.env` with a fresh
//!    SECRET_KEY.
//! 3. Everything happens in a staging folder next to the destination, which
//!    is moved into place only when complete: a failure leaves nothing
//!    half-written.
//!
//! An existing, non-empty destination is replaced only with `--force`, and
//! only when it is a previous stamp: its `.xtask-stamp` manifest (written
//! by every stamp: the SHA-256 of each file it made, in `sha256sum`'s
//! format) lists every file it holds, unchanged. The only other files
//! tolerated are what cargo regenerates: `Cargo.lock` and a `target/`
//! folder carrying cargo's `CACHEDIR.TAG`. Anything else (an edited source,
//! a changed `.env`, a database, a `.git`) refuses the replacement, and so
//! do `$HOME`, its parents, file-system roots and mount points. The checks
//! run again just before the swap (the render takes seconds), and once
//! more on the folder moved aside, before it is deleted. Folders under this
//! repository's own `target/` (the demo, the template tests) are build
//! output and are replaced whatever they hold.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{repo, templates};
use auth_cli::kit::PROVENANCE;
use auth_kit::config::catalog;

/// Arguments of `cargo xtask new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The template to stamp.
    #[arg(long, value_enum)]
    pub strategy: Strategy,
    /// The project's name: lowercase letters, digits and '-', e.g. my-api.
    #[arg(long)]
    pub name: String,
    /// Where to create the project (default: ./<name>).
    #[arg(long)]
    pub dest: Option<PathBuf>,
    /// Replace the destination if it is a previous stamp left unchanged
    /// (see `.xtask-stamp` in it); anything else is refused.
    #[arg(long)]
    pub force: bool,
    /// Stamp from another checkout of this repository (its templates and
    /// kit, and its commit in the provenance record) instead of this one.
    #[arg(long, value_name = "REPO")]
    pub from: Option<PathBuf>,
}

/// An authentication strategy and its template (`--strategy`'s values are
/// the variants' names in lowercase, the same as [`Strategy::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// JWT access and refresh tokens, no scopes.
    Jwt,
    /// The OAuth2 password flow with scopes.
    Oauth2,
    /// Supabase Auth.
    Supabase,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Jwt, Strategy::Oauth2, Strategy::Supabase];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Jwt => "jwt",
            Strategy::Oauth2 => "oauth2",
            Strategy::Supabase => "supabase",
        }
    }

    pub fn template_dir(self) -> PathBuf {
        self.template_dir_in(repo::root())
    }

    /// The same strategy in the settings catalogue (a Supabase service is
    /// one on an external identity provider).
    pub fn catalog(self) -> catalog::Strategy {
        match self {
            Strategy::Jwt => catalog::Strategy::Jwt,
            Strategy::Oauth2 => catalog::Strategy::Oauth2,
            Strategy::Supabase => catalog::Strategy::External,
        }
    }

    /// Every setting its services read, in the order the stamped `.env`
    /// lists them: the Supabase service's own first, then the shared ones.
    pub fn settings(self) -> Vec<&'static catalog::Setting> {
        let own: &[catalog::Setting] = match self {
            Strategy::Supabase => auth_kit_supabase::settings::ALL,
            Strategy::Jwt | Strategy::Oauth2 => &[],
        };
        own.iter()
            .chain(catalog::for_strategy(self.catalog()))
            .collect()
    }

    /// The template in the checkout at `root`.
    pub fn template_dir_in(self, root: &Path) -> PathBuf {
        let folder = match self {
            Strategy::Jwt => "jwt_auth",
            Strategy::Oauth2 => "oauth2_flow",
            Strategy::Supabase => "supabase_auth",
        };
        root.join("templates").join(folder)
    }
}

/// `cargo xtask new`: checks the input, stamps, prints the next steps.
pub fn run(args: &NewArgs) -> Result<PathBuf> {
    let strategy = args.strategy;
    check_name(&args.name)?;
    let dest = args
        .dest
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let started = std::time::Instant::now();
    let root = args.from.as_deref().unwrap_or(repo::root());
    if !root.join("crates/auth-kit").is_dir() {
        bail!(
            "{} is not a checkout of the auth-kit repository (it has no crates/auth-kit): pass its root with --from",
            root.display()
        );
    }
    stamp_from(root, strategy, &args.name, &dest, args.force)?;
    let run = match strategy {
        Strategy::Supabase => format!(
            "  cd {0} && cargo run -p gotrue-stub -- --env-file .env   # an offline Supabase Auth stand-in\n  cd {0} && cargo run     # in a second terminal; then open http://127.0.0.1:8000/docs",
            dest.display()
        ),
        _ => format!(
            "  cd {} && cargo run     # then open http://127.0.0.1:8000/docs",
            dest.display()
        ),
    };
    // A closed pipe (`cargo xtask new ... | head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "Stamped the {} service '{}' into {} in {:.1}s.\n\n{run}\n  cargo test --workspace # its own tests and the kit's",
        strategy.name(),
        args.name,
        dest.display(),
        started.elapsed().as_secs_f64(),
    );
    Ok(dest)
}

/// Names cargo, crates.io and this project's own crates would trip over.
const RESERVED_NAMES: &[&str] = &[
    "auth-kit",
    "auth-kit-supabase",
    "gotrue-stub",
    "service",
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
    "self",
    "build",
];

/// A project name: 1 to 64 of `a-z 0-9 -`, starting with a letter, not
/// ending with `-`, no `--`.
pub fn check_name(name: &str) -> Result<()> {
    let shape_ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !shape_ok {
        bail!(
            "'{name}' is not a valid project name: use 1 to 64 lowercase letters, digits and '-', starting with a letter (e.g. my-api)"
        );
    }
    if RESERVED_NAMES.contains(&name) {
        bail!("'{name}' is reserved: choose another --name (e.g. {name}-service)");
    }
    Ok(())
}

/// Renders, completes and moves the project into `dest`.
pub fn stamp(strategy: Strategy, name: &str, dest: &Path, force: bool) -> Result<()> {
    stamp_from(repo::root(), strategy, name, dest, force)
}

/// [`stamp`] from the checkout of this repository at `root`.
pub fn stamp_from(
    root: &Path,
    strategy: Strategy,
    name: &str,
    dest: &Path,
    force: bool,
) -> Result<()> {
    check_destination(dest, force)?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    // Staged next to the destination: the final rename stays on one file system.
    let staging = tempfile::Builder::new()
        .prefix(".xtask-new-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    // The jwt and supabase templates are assembled from the oauth2 one, in
    // whole or in part; the folder lives until the end of this function.
    let assembled = match strategy {
        Strategy::Jwt => Some(templates::assemble(root, &templates::JWT)?),
        Strategy::Supabase => Some(templates::assemble(root, &templates::SUPABASE)?),
        Strategy::Oauth2 => None,
    };
    let template = match &assembled {
        Some(folder) => folder.path().to_owned(),
        None => strategy.template_dir_in(root),
    };
    let project = render(&template, strategy, name, staging.path())?;
    let kit = auth_cli::kit::kit_files(
        &auth_cli::kit::WorkingTree(root.to_owned()),
        strategy.name(),
    )?;
    for (path, bytes) in &kit {
        let to = project.join(path);
        if let Some(folder) = to.parent() {
            fs::create_dir_all(folder)?;
        }
        fs::write(&to, bytes).with_context(|| format!("cannot write {}", to.display()))?;
    }
    fs::write(
        project.join(PROVENANCE),
        provenance(root, strategy, &kit)?.render(),
    )
    .context("cannot write the kit's provenance record")?;
    fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock"))
        .context("cannot copy Cargo.lock")?;
    write_private_file(&project.join(".env"), &env_file(strategy, name))?;
    write_manifest(&project)?;
    // Again: the destination may have changed while the template rendered.
    check_destination(dest, force)?;
    move_into_place(&project, dest, force)
    // `staging` (now empty) is removed when dropped, also on every error path above.
}

/// The template through the cargo-generate library, as its CLI renders it
/// (`cargo xtask generate` is that CLI), in a child process; returns the
/// rendered folder inside `into`. cargo-generate's chatter is shown only
/// when it fails.
pub fn render(template: &Path, strategy: Strategy, name: &str, into: &Path) -> Result<PathBuf> {
    if !template.join("cargo-generate.toml").is_file() {
        bail!(
            "the {} template is missing at {}",
            strategy.name(),
            template.display()
        );
    }
    let into_arg = into.display().to_string();
    let template_arg = template.display().to_string();
    let args = [
        "generate",
        "--path",
        &template_arg,
        "--name",
        name,
        "--destination",
        &into_arg,
        // The name is already checked: keep it exactly (no kebab-case rewrite).
        "--force",
        "--silent",
        "--vcs",
        "none",
        "--no-workspace",
    ];
    let output = generate_command(&args)?
        .output()
        .context("cannot start the template renderer")?;
    if !output.status.success() {
        bail!(
            "rendering the {} template failed:\n{}{}",
            strategy.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let project = into.join(name);
    if !project.join("Cargo.toml").is_file() {
        bail!(
            "rendering the {} template produced no Cargo.toml in {}",
            strategy.name(),
            project.display()
        );
    }
    Ok(project)
}

/// `xtask generate ARGS`: cargo-generate's own CLI, run from this binary.
/// cargo-generate insists on an author name from the environment even when
/// a template does not use it: give it a neutral one when none is set.
pub fn generate_command(args: &[&str]) -> Result<std::process::Command> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    if !exe.exists() {
        // Linux names a replaced executable "<path> (deleted)".
        bail!(
            "the xtask binary was rebuilt while it ran ({}); run the command again",
            exe.display()
        );
    }
    let mut command = std::process::Command::new(exe);
    command.args(args);
    let has_author = [
        "CARGO_NAME",
        "GIT_AUTHOR_NAME",
        "GIT_COMMITTER_NAME",
        "USER",
        "USERNAME",
        "NAME",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    if !has_author {
        command.env("CARGO_NAME", "auth-kit");
    }
    Ok(command)
}

/// The body of `xtask generate`: `cargo generate` with these arguments.
pub fn generate(args: &[String]) -> Result<()> {
    use clap::Parser as _;
    let cli = cargo_generate::Cli::try_parse_from(
        ["cargo", "generate"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cargo_generate::Cli::Generate(args) = cli;
    cargo_generate::generate(args)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}"))
}

fn check_destination(dest: &Path, force: bool) -> Result<()> {
    if !dest.exists() {
        return Ok(());
    }
    if !dest.is_dir() {
        bail!(
            "{} exists and is not a folder: choose another --dest",
            dest.display()
        );
    }
    let empty = fs::read_dir(dest)
        .with_context(|| format!("cannot read {}", dest.display()))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    if !force {
        bail!(
            "{} exists and is not empty: choose another --dest, or pass --force to replace a previous stamp",
            dest.display()
        );
    }
    check_replaceable(dest)
}

/// Whether `dest` may be deleted to make room for a new stamp.
fn check_replaceable(dest: &Path) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        bail!(
            "refusing to replace {}: {why}; remove it yourself if you mean it, or choose another --dest",
            dest.display()
        )
    };
    let canonical = dest
        .canonicalize()
        .with_context(|| format!("cannot read {}", dest.display()))?;
    let cwd = std::env::current_dir()?.canonicalize()?;
    if repo::root().canonicalize()?.starts_with(&canonical) || cwd.starts_with(&canonical) {
        return refuse("it contains this repository or the current directory".to_owned());
    }
    if let Some(home) = std::env::var_os("HOME").and_then(|h| PathBuf::from(h).canonicalize().ok())
        && home.starts_with(&canonical)
    {
        return refuse("it is your home folder, or holds it".to_owned());
    }
    let Some(parent) = canonical.parent() else {
        return refuse("it is the root of the file system".to_owned());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if fs::metadata(&canonical)?.dev() != fs::metadata(parent)?.dev() {
            return refuse("it is the root of a mounted file system".to_owned());
        }
    }
    // This repository's target/ holds build output only (the demo, the
    // template tests): anything there may go.
    if canonical.starts_with(repo::root().canonicalize()?.join("target")) {
        return Ok(());
    }
    if dest.join(".git").exists() {
        return refuse("it is a git repository".to_owned());
    }
    match foreign_file(&canonical)? {
        None => Ok(()),
        Some(Foreign::NoManifest) => refuse(format!(
            "it is not a previous stamp (it has no {MANIFEST} manifest)"
        )),
        Some(Foreign::Unknown(path)) => refuse(format!(
            "{} was not made by `cargo xtask new`",
            path.display()
        )),
        Some(Foreign::Changed(path)) => refuse(format!(
            "{} was changed since it was stamped",
            path.display()
        )),
    }
}

/// The manifest every stamp carries: what `--force` may replace.
pub const MANIFEST: &str = ".xtask-stamp";

/// Why a folder is not an unchanged previous stamp.
enum Foreign {
    NoManifest,
    /// A file the manifest does not list (relative path).
    Unknown(PathBuf),
    /// A listed file whose content changed.
    Changed(PathBuf),
}

/// The first file in `dir` that a previous stamp did not leave there as it
/// was, if any.
fn foreign_file(dir: &Path) -> Result<Option<Foreign>> {
    let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) else {
        return Ok(Some(Foreign::NoManifest));
    };
    let listed: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, path)| (path, hash))
        .collect();
    for path in auth_cli::kit::files_under(dir)? {
        let relative = path.strip_prefix(dir).unwrap_or(&path);
        let name = relative.to_string_lossy();
        if name == MANIFEST || regenerated_by_cargo(dir, relative) {
            continue;
        }
        match listed.get(name.as_ref()) {
            None => return Ok(Some(Foreign::Unknown(relative.to_owned()))),
            Some(hash) if *hash != sha256_of(&path)? => {
                return Ok(Some(Foreign::Changed(relative.to_owned())));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// What cargo writes into a project it builds: Cargo.lock (rewritten for
/// the project's own packages) and a target/ folder it tagged as a cache.
fn regenerated_by_cargo(dir: &Path, relative: &Path) -> bool {
    relative == Path::new("Cargo.lock")
        || (relative.starts_with("target") && dir.join("target/CACHEDIR.TAG").is_file())
}

fn sha256_of(path: &Path) -> Result<String> {
    use sha2::{Digest as _, Sha256};
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        // Never made by a stamp: no hash matches it.
        return Ok(String::new());
    }
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Writes the manifest of everything in `project` (`sha256sum` format, so
/// `sha256sum -c .xtask-stamp` checks it too).
fn write_manifest(project: &Path) -> Result<()> {
    let mut text = String::from(
        "# Written by `cargo xtask new`: every file it made, with its SHA-256.\n# `cargo xtask new --force` replaces this folder only while it holds these files unchanged.\n",
    );
    for path in auth_cli::kit::files_under(project)? {
        let relative = path.strip_prefix(project).unwrap_or(&path);
        text.push_str(&format!("{}  {}\n", sha256_of(&path)?, relative.display()));
    }
    fs::write(project.join(MANIFEST), text).context("cannot write the stamp manifest")
}

fn move_into_place(project: &Path, dest: &Path, force: bool) -> Result<()> {
    if !force || !dest.exists() {
        // rename(2) onto an existing folder succeeds only if it is empty, so a
        // folder that gained files while we rendered is never replaced
        // without --force.
        return fs::rename(project, dest).with_context(|| {
            format!("cannot create {} (if it now exists and is not empty, choose another --dest or pass --force)", dest.display())
        });
    }
    // --force on a non-empty folder (checked above): swap it out, check what
    // was swapped out once more (nobody else writes under the new name),
    // then delete it.
    let replaced = dest.with_file_name(format!(
        ".{}.replaced-{}",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("project"),
        std::process::id()
    ));
    fs::rename(dest, &replaced).with_context(|| format!("cannot move {} aside", dest.display()))?;
    if let Err(e) = check_replaceable_aside(&replaced, dest) {
        // Put the original back: nothing is lost.
        let _ = fs::rename(&replaced, dest);
        return Err(e);
    }
    if let Err(e) = fs::rename(project, dest) {
        let _ = fs::rename(&replaced, dest);
        return Err(e).with_context(|| format!("cannot create {}", dest.display()));
    }
    fs::remove_dir_all(&replaced)
        .with_context(|| format!("cannot remove the replaced {}", replaced.display()))
}

/// [`check_replaceable`] for the folder moved aside to `replaced`, with
/// errors naming where it was.
fn check_replaceable_aside(replaced: &Path, dest: &Path) -> Result<()> {
    let inside_target = dest
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .zip(repo::root().canonicalize().ok())
        .is_some_and(|(parent, root)| parent.starts_with(root.join("target")));
    if inside_target {
        return Ok(());
    }
    match foreign_file(replaced)? {
        None => Ok(()),
        Some(_) => bail!(
            "refusing to replace {}: it changed while the new project was made; it is left as it was",
            dest.display()
        ),
    }
}

/// Where the kit being stamped comes from: the kit's version, this
/// repository's commit, and whether the kit's sources differ from it.
fn provenance(
    root: &Path,
    strategy: Strategy,
    kit: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<auth_cli::kit::Provenance> {
    let (commit, dirty) = repository_commit(root);
    let version = fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|m| {
            m.get("workspace")?
                .get("package")?
                .get("version")?
                .as_str()
                .map(str::to_owned)
        })
        .context("the repository's Cargo.toml has no workspace.package.version")?;
    Ok(auth_cli::kit::Provenance::of(
        &version,
        &commit,
        dirty,
        strategy.name(),
        kit,
    ))
}

/// This repository's HEAD, and whether the kit's sources (crates/, docs/,
/// the root manifest) have uncommitted changes; `unknown` outside a git
/// checkout (such a stamp cannot be upgraded).
pub fn repository_commit(root: &Path) -> (String, bool) {
    let head = auth_cli::kit::git(root, &["rev-parse", "HEAD"])
        .map(|out| String::from_utf8_lossy(&out).trim().to_owned());
    let Ok(head) = head else {
        return ("unknown".to_owned(), true);
    };
    let dirty = auth_cli::kit::git(
        root,
        &[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            "crates",
            "docs",
            "Cargo.toml",
        ],
    )
    .map_or(true, |out| !out.is_empty());
    (head, dirty)
}

/// Writes `contents` to a file only its owner can read (`.env` holds secrets).
fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The stamped `.env`: a fresh SECRET_KEY (or the supabase project's
/// settings) and every other setting commented out with its default, as
/// the settings catalogue (`auth_kit::config::catalog`) lists them.
pub fn env_file(strategy: Strategy, name: &str) -> String {
    format!(
        "# Settings of {name}. The environment overrides this file. Keep it out of version control.\n# Written by `cargo xtask new`; see docs/troubleshooting.md for what each error means.\n\n{}",
        strategy
            .settings()
            .into_iter()
            .map(|s| s.env_lines(name))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["my-api", "a", "api2", "x-1-y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "My-API",
            "1api",
            "-api",
            "api-",
            "a--b",
            "my_api",
            "my api",
            "ünï",
            "auth-kit",
            &"a".repeat(65),
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    /// The last guard: a destination that gained a file after the checks
    /// (the render takes seconds) is put back untouched, not deleted.
    #[test]
    fn a_destination_changed_after_the_checks_is_put_back() {
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("svc");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("kept.txt"), "stamped").unwrap();
        write_manifest(&dest).unwrap();
        check_replaceable(&dest).unwrap();
        // Appears between the check and the swap.
        fs::write(dest.join("late.txt"), "mine").unwrap();
        let project = work.path().join("new");
        fs::create_dir(&project).unwrap();
        fs::write(project.join("fresh.txt"), "new").unwrap();
        let e = move_into_place(&project, &dest, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("it changed while the new project was made"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(dest.join("late.txt")).unwrap(), "mine");
        assert_eq!(
            fs::read_to_string(dest.join("kept.txt")).unwrap(),
            "stamped"
        );
        assert!(project.join("fresh.txt").exists());
        let names: Vec<_> = fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "nothing left aside: {names:?}");
    }

    #[test]
    fn strategies() {
        use clap::ValueEnum as _;
        assert_eq!(
            Strategy::from_str("oauth2", false).unwrap(),
            Strategy::Oauth2
        );
        assert!(Strategy::from_str("oauth", false).is_err());
        // The command line's names are the ones the provenance record and
        // the kit's file lists use.
        assert_eq!(Strategy::value_variants(), &Strategy::ALL);
        for strategy in Strategy::ALL {
            let value = strategy.to_possible_value().unwrap();
            assert_eq!(value.get_name(), strategy.name());
        }
    }

    #[test]
    fn env_files_list_every_setting() {
        let env = auth_kit::config::Environment::from_pairs([("SUPABASE_URL", "x")]);
        let cases = [
            (Strategy::Oauth2, auth_kit::config::check_service(&env, "x")),
            (Strategy::Supabase, {
                let mut findings = auth_kit_supabase::config::check_supabase(&env);
                findings.extend(auth_kit::config::check_traffic(&env));
                findings
            }),
        ];
        for (strategy, findings) in cases {
            let file = env_file(strategy, "x");
            for finding in findings {
                assert!(
                    file.contains(&format!("{}=", finding.subject)),
                    "{strategy:?}: {} is not in the .env template",
                    finding.subject
                );
            }
        }
    }

    #[test]
    fn env_files_have_a_fresh_key() {
        let a = env_file(Strategy::Oauth2, "x");
        let b = env_file(Strategy::Oauth2, "x");
        assert_ne!(a, b);
        let key = a
            .lines()
            .find_map(|l| l.strip_prefix("SECRET_KEY="))
            .unwrap();
        assert_eq!(key.len(), 64);
        assert!(auth_kit::config::secret_key(Some(key)).is_ok());
        // Every setting is listed, commented out, and the file as written is accepted.
        for setting in [
            "REFRESH_TOKEN_REUSE_SECONDS=10",
            "SESSION_CACHE_SECONDS=30",
            "SECRET_KEY_PREVIOUS=",
            "JWT_PREVIOUS_PUBLIC_KEY_FILES=",
            "JWT_KEY_ROTATED_AT=",
        ] {
            assert!(a.contains(&format!("\n# {setting}")), "{setting}");
        }
    }

    #[test]
    fn env_file_defaults_are_accepted() {
        let env = env_file(Strategy::Jwt, "x");
        for setting in [
            "MAIL_URL=file://./outbox",
            "MAIL_FROM=no-reply@localhost",
            "PUBLIC_URL=",
            "RESET_TOKEN_EXPIRE_MINUTES=30",
            "VERIFY_TOKEN_EXPIRE_HOURS=48",
            "REQUIRE_VERIFIED_EMAIL=false",
            "MAIL_MAX_PER_ADDRESS=5",
            "MAIL_MAX_PER_IP=30",
        ] {
            assert!(env.contains(&format!("\n# {setting}")), "{setting}");
        }
        // Uncommented, the defaults are accepted as they are.
        let uncommented: Vec<(String, String)> = env
            .lines()
            .filter_map(|l| l.strip_prefix("# ").unwrap_or(l).split_once('='))
            // `KEY=  (note)` lines document a setting without a default.
            .filter(|(k, v)| {
                !v.trim().is_empty()
                    && !v.trim_start().starts_with('(')
                    && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let settings = auth_kit::config::ServiceSettings::from_env(
            &auth_kit::config::Environment::from_pairs(uncommented),
            "x",
        );
        assert!(settings.is_ok(), "{settings:?}");
    }

    #[test]
    fn auth_kit_manifest_is_self_contained() {
        let manifest = auth_cli::kit::standalone_manifest(
            &fs::read_to_string(repo::root().join("crates/auth-kit/Cargo.toml")).unwrap(),
            &fs::read_to_string(repo::root().join("Cargo.toml")).unwrap(),
            "oauth2",
        )
        .unwrap();
        assert!(!manifest.contains("workspace = true"), "{manifest}");
        let parsed: toml::Table = manifest.parse().unwrap();
        // The tests' dev-dependencies travel, resolved; the benchmarks' do not.
        let dev = parsed["dev-dependencies"].as_table().unwrap();
        assert_eq!(dev["tempfile"]["version"].as_str(), Some("3"), "{manifest}");
        assert!(!dev.contains_key("criterion"), "{manifest}");
        assert!(!parsed.contains_key("bench"), "{manifest}");
        assert_eq!(parsed["package"]["edition"].as_str(), Some("2024"));
        assert_eq!(
            parsed["dependencies"]["jsonwebtoken"]["default-features"].as_bool(),
            Some(false)
        );
        assert!(
            parsed["dependencies"]["utoipa"]["optional"]
                .as_bool()
                .unwrap()
        );
    }
}
