//! The copied auth kit: what a stamp copies, where it came from, and which
//! of its files the project changed since.
//!
//! A stamped project carries a copy of the kit (the crates under `crates/`
//! and a few guides under `docs/`) and a provenance record, [`PROVENANCE`]:
//!
//! ```text
//! # The auth kit in this project, where it came from, and the SHA-256 of each of its files as copied.
//! # `cargo auth kit status` compares the files with these hashes (so does `sha256sum -c .kit-stamp`).
//! # kit-version: 0.1.0
//! # commit: 3f2c...e1 (the auth-kit repository's commit the kit was copied from)
//! # dirty: false
//! # strategy: oauth2
//! 9b1d...  crates/auth-kit/src/lib.rs
//! ...
//! ```
//!
//! The `# key: value` lines are the provenance; every other line is
//! `sha256sum`'s format (hash, two spaces, path relative to the project).
//! `dirty: true` means the kit's sources (crates/, docs/, Cargo.toml) had
//! uncommitted changes when the stamp was made, so the commit alone does
//! not say what was copied. `cargo xtask upgrade` rewrites the record.
//!
//! The kit's files are produced from a [`KitSource`] (this repository's
//! working tree, or a commit of its git history) by [`kit_files`], the one
//! definition of what a stamp copies: `cargo xtask new` writes them,
//! `cargo xtask upgrade` computes the base and the new version with it, and
//! `cargo auth kit diff` the recorded version.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use toml::{Table, Value};

/// The provenance record at a stamped project's root.
pub const PROVENANCE: &str = ".kit-stamp";

/// Arguments of `cargo auth kit`.
#[derive(clap::Args, Debug)]
pub struct KitArgs {
    #[command(subcommand)]
    pub action: KitAction,
    /// The project (default: the nearest folder holding .kit-stamp, from here up).
    #[arg(long, global = true)]
    pub project: Option<PathBuf>,
}

/// What to show.
#[derive(clap::Subcommand, Debug)]
pub enum KitAction {
    /// The kit's version and commit, and the kit files changed, missing or added since.
    Status,
    /// Unified diffs of the changed kit files against the recorded commit's
    /// version, read from a clone of the auth-kit repository.
    Diff {
        /// A clone of the auth-kit repository that holds the recorded commit.
        #[arg(long)]
        repo: PathBuf,
        /// Only these files (paths relative to the project).
        paths: Vec<String>,
    },
}

pub fn run(args: &KitArgs) -> Result<()> {
    let project = match &args.project {
        Some(dir) => dir.clone(),
        None => find_project()?,
    };
    let record = Provenance::read(&project)?;
    match &args.action {
        KitAction::Status => status(&project, &record),
        KitAction::Diff { repo, paths } => diff(&project, &record, repo, paths),
    }
}

/// The nearest folder, from the current one up, holding [`PROVENANCE`].
fn find_project() -> Result<PathBuf> {
    let here = std::env::current_dir().context("cannot read the current folder")?;
    here.ancestors()
        .find(|dir| dir.join(PROVENANCE).is_file())
        .map(Path::to_owned)
        .with_context(|| {
            format!(
                "no {PROVENANCE} here or above {}: run this in a stamped project, or pass --project DIR",
                here.display()
            )
        })
}

/// The provenance record of a stamped project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The kit's version (the repository's workspace version).
    pub kit_version: String,
    /// The repository's commit the kit was copied from.
    pub commit: String,
    /// Whether the kit's sources had uncommitted changes then.
    pub dirty: bool,
    /// The template the project was stamped from: jwt, oauth2 or supabase.
    pub strategy: String,
    /// Each kit file (relative path, `/`-separated) and its SHA-256 as copied.
    pub files: BTreeMap<String, String>,
}

impl Provenance {
    /// The record of `files` (relative path and contents) copied from `commit`.
    pub fn of(
        kit_version: &str,
        commit: &str,
        dirty: bool,
        strategy: &str,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Self {
        Self {
            kit_version: kit_version.to_owned(),
            commit: commit.to_owned(),
            dirty,
            strategy: strategy.to_owned(),
            files: files
                .iter()
                .map(|(path, bytes)| (path.clone(), sha256_hex(bytes)))
                .collect(),
        }
    }

    /// The record as written to [`PROVENANCE`].
    pub fn render(&self) -> String {
        let mut text = format!(
            "# The auth kit in this project, where it came from, and the SHA-256 of each of its files as copied.\n# `cargo auth kit status` compares the files with these hashes (so does `sha256sum -c {PROVENANCE}`).\n# kit-version: {}\n# commit: {}\n# dirty: {}\n# strategy: {}\n",
            self.kit_version, self.commit, self.dirty, self.strategy
        );
        for (path, hash) in &self.files {
            text.push_str(&format!("{hash}  {path}\n"));
        }
        text
    }

    /// Parses a record; errors name the file and the fix.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let mut fields = BTreeMap::new();
        let mut files = BTreeMap::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                if let Some((key, value)) = comment.split_once(": ")
                    && !key.contains(' ')
                {
                    fields.insert(key.to_owned(), value.trim().to_owned());
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            match line.split_once("  ") {
                Some((hash, path))
                    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    if !is_kit_path(path) {
                        bail!(
                            "{} names a file outside the kit ({path:?}): kit files sit under crates/ or docs/; restore the file from version control",
                            origin.display()
                        );
                    }
                    files.insert(path.to_owned(), hash.to_ascii_lowercase());
                }
                _ => bail!(
                    "{} has a line that is neither `# key: value` nor `<sha256>  <path>`: {line:?}; restore the file from version control",
                    origin.display()
                ),
            }
        }
        let field = |key: &str| {
            fields.get(key).cloned().with_context(|| {
                format!(
                    "{} has no `# {key}:` line; restore the file from version control",
                    origin.display()
                )
            })
        };
        let commit = field("commit")?;
        // `unknown`: stamped from a copy that was not a git checkout.
        let full_hash =
            matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !full_hash && commit != "unknown" {
            bail!(
                "{} records the commit {commit:?}, not a full git hash; restore the file from version control",
                origin.display()
            );
        }
        Ok(Self {
            kit_version: field("kit-version")?,
            commit,
            dirty: field("dirty")? == "true",
            strategy: field("strategy")?,
            files,
        })
    }

    /// The record of the project in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(PROVENANCE);
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "{} has no provenance record ({PROVENANCE}): it was not stamped by `cargo xtask new`, or was stamped before kit provenance existed",
                dir.display()
            )
        })?;
        Self::parse(&text, &path)
    }
}

/// Whether `path` can name a kit file: relative, `/`-separated plain names
/// (no empty, `.` or `..` part, no backslash), under crates/ or docs/. A
/// record or a git tree naming anything else is refused, so nothing outside
/// the project is ever read, written or removed.
pub fn is_kit_path(path: &str) -> bool {
    is_plain_relative(path) && matches!(path.split('/').next(), Some("crates" | "docs"))
}

/// Relative, `/`-separated plain names: no empty, `.` or `..` part, no
/// backslash, NUL or line break (the records are one path a line).
fn is_plain_relative(path: &str) -> bool {
    path.split('/')
        .all(|part| !matches!(part, "" | "." | "..") && !part.contains(['\\', '\0', '\n', '\r']))
}

/// Whether `path` under `project`, or a folder on the way to it, is a
/// symbolic link (the tools never follow one: it could lead outside the
/// project).
pub fn is_linked(project: &Path, path: &str) -> bool {
    let mut at = project.to_owned();
    path.split('/').any(|part| {
        at.push(part);
        fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// What happened to a kit file since it was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Its contents differ from the recorded hash.
    Changed,
    /// It is gone.
    Missing,
    /// It sits in a kit crate's folder but the record does not list it.
    Added,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Change::Changed => "changed",
            Change::Missing => "missing",
            Change::Added => "added",
        }
    }
}

/// The kit files of `project` that differ from `record`, offline.
pub fn changes(project: &Path, record: &Provenance) -> Result<Vec<(Change, String)>> {
    let mut out = Vec::new();
    for (path, hash) in &record.files {
        let file = project.join(path);
        if is_linked(project, path) {
            out.push((Change::Changed, path.clone()));
            continue;
        }
        match fs::read(&file) {
            Ok(bytes) if sha256_hex(&bytes) == *hash => {}
            Ok(_) => out.push((Change::Changed, path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push((Change::Missing, path.clone()))
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }
    // The kit's crate folders: files there that the record does not list.
    let crate_roots: BTreeSet<String> = record
        .files
        .keys()
        .filter_map(|p| {
            let mut parts = p.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("crates"), Some(name), Some(_)) => Some(format!("crates/{name}")),
                _ => None,
            }
        })
        .collect();
    for root in crate_roots {
        for file in files_under(&project.join(&root))? {
            let relative = relative_path(project, &file);
            let in_target = relative
                .strip_prefix(&format!("{root}/"))
                .is_some_and(|rest| rest.starts_with("target/"));
            if !in_target && !record.files.contains_key(&relative) {
                out.push((Change::Added, relative));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn status(project: &Path, record: &Provenance) -> Result<()> {
    let changes = changes(project, record)?;
    println!(
        "auth kit {} from commit {}{}, {} template; {} files recorded in {PROVENANCE}",
        record.kit_version,
        record.commit,
        if record.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        record.strategy,
        record.files.len()
    );
    if changes.is_empty() {
        println!("No kit file changed since.");
        return Ok(());
    }
    for (change, path) in &changes {
        println!("{:<8} {path}", change.label());
    }
    println!(
        "{} kit file{} differ from the record; `cargo auth kit diff --repo <auth-kit clone>` shows how.",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn diff(project: &Path, record: &Provenance, repo: &Path, only: &[String]) -> Result<()> {
    if record.dirty {
        eprintln!(
            "note: the kit was copied from a working tree with uncommitted changes; the diffs are against commit {} as committed",
            record.commit
        );
    }
    print!("{}", diffs(project, record, repo, only)?);
    Ok(())
}

/// Unified diffs of the project's changed kit files (all of them, or those
/// in `only`) against the recorded commit's version in `repo`.
pub fn diffs(project: &Path, record: &Provenance, repo: &Path, only: &[String]) -> Result<String> {
    let source = GitCommit::open(repo, &record.commit)?;
    let mut out = String::new();
    let mut shown = 0;
    for (change, path) in changes(project, record)? {
        if !only.is_empty() && !only.contains(&path) {
            continue;
        }
        if is_linked(project, &path) {
            out.push_str(&format!("{path} is a symbolic link: not followed\n"));
            continue;
        }
        let ours = match change {
            Change::Missing => Vec::new(),
            _ => fs::read(project.join(&path))?,
        };
        let base = match change {
            Change::Added => Vec::new(),
            _ => render_file(&source, &path, &record.strategy)?.unwrap_or_default(),
        };
        let (Ok(base), Ok(ours)) = (String::from_utf8(base), String::from_utf8(ours)) else {
            out.push_str(&format!("Binary file {path} differs\n"));
            continue;
        };
        let patch = diffy::DiffOptions::new()
            .set_original_filename(format!("a/{path}"))
            .set_modified_filename(format!("b/{path}"))
            .create_patch(&base, &ours)
            .to_string();
        out.push_str(&patch);
        shown += 1;
    }
    if shown == 0 {
        out.push_str(&format!(
            "No kit file changed since commit {}.\n",
            record.commit
        ));
    }
    Ok(out)
}

/// Where kit files are read from.
pub trait KitSource {
    /// The file at `path` (relative to the repository root), if it exists.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Every file under the folder `dir` (relative paths, sorted).
    fn list(&self, dir: &str) -> Result<Vec<String>>;
}

/// The repository's working tree, as it is on disk.
#[derive(Debug)]
pub struct WorkingTree(pub PathBuf);

impl KitSource for WorkingTree {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let file = self.0.join(path);
        match fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let folder = self.0.join(dir);
        if !folder.is_dir() {
            return Ok(Vec::new());
        }
        Ok(files_under(&folder)?
            .iter()
            .map(|f| relative_path(&self.0, f))
            .collect())
    }
}

/// A commit of the repository's git history (read with the `git` program).
#[derive(Debug)]
pub struct GitCommit {
    repo: PathBuf,
    commit: String,
    files: BTreeSet<String>,
}

impl GitCommit {
    /// `commit` (a full hash, or any name git resolves, such as HEAD) of the
    /// repository at `repo`.
    pub fn open(repo: &Path, commit: &str) -> Result<Self> {
        let resolved = git(repo, &["rev-parse", "--verify", &format!("{commit}^{{commit}}")])
            .with_context(|| {
                format!(
                    "commit {commit} is not in the history of {}: pass a clone of the auth-kit repository that has it (`git -C {} fetch` may bring it)",
                    repo.display(),
                    repo.display()
                )
            })?;
        let commit = String::from_utf8_lossy(&resolved).trim().to_owned();
        let listing = git(repo, &["ls-tree", "-r", "-z", "--name-only", &commit])?;
        let files = listing
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| String::from_utf8_lossy(name).into_owned())
            // A crafted tree could name `..`: never read or written.
            .filter(|name| is_plain_relative(name))
            .collect();
        Ok(Self {
            repo: repo.to_owned(),
            commit,
            files,
        })
    }

    /// The full hash of the commit.
    pub fn commit(&self) -> &str {
        &self.commit
    }
}

impl KitSource for GitCommit {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if !self.files.contains(path) {
            return Ok(None);
        }
        git(
            &self.repo,
            &["cat-file", "blob", &format!("{}:{path}", self.commit)],
        )
        .map(Some)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        Ok(self
            .files
            .iter()
            .filter(|f| f.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

/// Runs git in `repo`; its standard output, or an error with its message.
pub fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .context("cannot run git: install it, or put it on PATH")?;
    if !output.status.success() {
        bail!(
            "`git {}` failed in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// The crates a stamp of `strategy` carries.
pub fn kit_crates(strategy: &str) -> &'static [&'static str] {
    match strategy {
        "supabase" => &["auth-kit", "auth-kit-supabase", "auth-cli", "gotrue-stub"],
        _ => &["auth-kit", "auth-cli"],
    }
}

/// The guides under docs/ a stamp of `strategy` carries (the contract says
/// which of its sections apply to which service).
fn kit_docs(strategy: &str) -> &'static [&'static str] {
    match strategy {
        "supabase" => &[
            "docs/contract.md",
            "docs/deployment.md",
            "docs/troubleshooting.md",
        ],
        _ => &[
            "docs/account-lifecycle.md",
            "docs/contract.md",
            "docs/deployment.md",
            "docs/operations.md",
            "docs/troubleshooting.md",
        ],
    }
}

/// Files of the kit's crates that only the supabase template uses.
const SUPABASE_ONLY: &[&str] = &["crates/auth-cli/src/validate/supabase.rs"];

/// Where a [`SUPABASE_ONLY`] file is declared as a module, as the
/// repository has it, and as other stamps hold it: an inline module, still
/// behind its `cfg`, because `cargo fmt` follows every `mod` whatever its
/// `cfg` and would stop on the missing file; turning the feature on there
/// says why it cannot be.
const SUPABASE_MODULE: (&str, &str, &str) = (
    "crates/auth-cli/src/validate.rs",
    "#[cfg(feature = \"supabase\")]\nmod supabase;\n",
    "#[cfg(feature = \"supabase\")]\nmod supabase {\n    compile_error!(\"the supabase checks come only with a supabase stamp\");\n}\n",
);

/// Whether `path` of a crate is copied: its sources, migrations, README,
/// and its tests with their fixtures, so `cargo test --workspace` in the
/// project runs them (not its benchmarks, which run in the auth-kit
/// repository), and the files its `testing` feature embeds (`testing/`:
/// the project's own tests use them).
fn copied_from_crate(krate: &str, path: &str, strategy: &str) -> bool {
    let inside = |part: &str| path.starts_with(&format!("crates/{krate}/{part}"));
    (inside("src/")
        || inside("migrations/")
        || inside("tests/")
        || inside("testing/")
        || path == format!("crates/{krate}/README.md"))
        && (strategy == "supabase" || !SUPABASE_ONLY.contains(&path))
}

/// Dev-dependency entries only the benchmarks need: they stay behind with
/// them (auth-kit's `sqlx` entry adds the Any driver its store benchmark
/// compares against; the tests use the normal dependency).
const BENCH_ONLY_DEV_DEPENDENCIES: &[&str] = &["criterion", "sqlx"];

/// Every kit file a stamp of `strategy` carries, by path relative to the
/// project (the same as in the repository), as read from `source`.
pub fn kit_files(source: &dyn KitSource, strategy: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for krate in kit_crates(strategy) {
        let root = format!("crates/{krate}");
        for path in source.list(&root)? {
            if copied_from_crate(krate, &path, strategy)
                && let Some(bytes) = render_file(source, &path, strategy)?
            {
                files.insert(path, bytes);
            }
        }
        let manifest = format!("{root}/Cargo.toml");
        let rendered = render_file(source, &manifest, strategy)?
            .with_context(|| format!("{manifest} is missing"))?;
        files.insert(manifest, rendered);
    }
    for doc in kit_docs(strategy) {
        let bytes = source
            .read(doc)?
            .with_context(|| format!("{doc} is missing"))?;
        files.insert((*doc).to_owned(), bytes);
    }
    Ok(files)
}

/// One kit file as a stamp of `strategy` holds it: a crate's manifest made
/// self-contained, outside a supabase stamp the declaration of a module it
/// does not carry emptied ([`SUPABASE_MODULE`]), anything else as it is.
pub fn render_file(source: &dyn KitSource, path: &str, strategy: &str) -> Result<Option<Vec<u8>>> {
    let is_manifest = path.starts_with("crates/")
        && path.ends_with("/Cargo.toml")
        && path.matches('/').count() == 2;
    let (declaring, declared, emptied) = SUPABASE_MODULE;
    if path == declaring && strategy != "supabase" {
        let Some(bytes) = source.read(path)? else {
            return Ok(None);
        };
        // An older or newer kit that declares it otherwise is taken as it is
        // (this also renders the kits of earlier commits, for upgrades);
        // today's is held to it by a test.
        return Ok(Some(match String::from_utf8(bytes) {
            Ok(text) => text.replacen(declared, emptied, 1).into_bytes(),
            Err(not_text) => not_text.into_bytes(),
        }));
    }
    if !is_manifest {
        return source.read(path);
    }
    let Some(manifest) = source.read(path)? else {
        return Ok(None);
    };
    let root = source
        .read("Cargo.toml")?
        .context("the repository's Cargo.toml is missing")?;
    let text = |bytes: Vec<u8>, name: &str| {
        String::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8"))
    };
    standalone_manifest(&text(manifest, path)?, &text(root, "Cargo.toml")?, strategy)
        .with_context(|| format!("cannot make {path} self-contained"))
        .map(|m| Some(m.into_bytes()))
}

/// A member crate's manifest with every `workspace = true` resolved against
/// the repository's root manifest (dev-dependencies too: the tests travel
/// with the crate), and the benchmarks, which stay there, dropped. In a stamp of a template
/// other than supabase the `supabase` feature enables nothing and is off
/// (the dependencies only it enabled are dropped); a supabase stamp turns
/// it on by default.
pub fn standalone_manifest(
    crate_manifest: &str,
    root_manifest: &str,
    strategy: &str,
) -> Result<String> {
    let mut manifest: Table = crate_manifest
        .parse()
        .context("the crate's manifest is not valid TOML")?;
    let root: Table = root_manifest
        .parse()
        .context("the root manifest is not valid TOML")?;
    let workspace = root
        .get("workspace")
        .and_then(Value::as_table)
        .context("the root manifest has no [workspace]")?;
    inherit_package(&mut manifest, workspace)?;
    inherit_lints(&mut manifest, workspace)?;
    inherit_dependencies(&mut manifest, workspace)?;
    set_supabase_feature(&mut manifest, strategy);
    for dropped in ["bench", "example"] {
        manifest.remove(dropped);
    }
    let body = toml::to_string(&manifest).context("cannot write the manifest")?;
    Ok(format!(
        "# A copy of this crate from the auth-kit repository, made self-contained by\n# `cargo xtask new` (workspace inheritance resolved). Its tests came with it;\n# its benchmarks stayed in the repository.\n\n{body}"
    ))
}

/// Whether a manifest entry is `{ workspace = true }` (with or without more keys).
fn inherits_workspace(value: &Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// `[package]` keys inherited from `workspace.package`, replaced by its values.
fn inherit_package(manifest: &mut Table, workspace: &Table) -> Result<()> {
    let Some(Value::Table(package)) = manifest.get_mut("package") else {
        return Ok(());
    };
    let shared = workspace
        .get("package")
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();
    for (key, value) in package.iter_mut() {
        if inherits_workspace(value) {
            *value = shared
                .get(key)
                .cloned()
                .with_context(|| format!("workspace.package.{key} is missing"))?;
        }
    }
    Ok(())
}

/// `lints.workspace = true` replaced by `workspace.lints`.
fn inherit_lints(manifest: &mut Table, workspace: &Table) -> Result<()> {
    if manifest.get("lints").is_some_and(inherits_workspace) {
        let lints = workspace
            .get("lints")
            .cloned()
            .context("workspace.lints is missing")?;
        manifest.insert("lints".to_owned(), lints);
    }
    Ok(())
}

/// Every inherited dependency and dev-dependency resolved against
/// `workspace.dependencies`; the benchmarks' dev-dependencies dropped.
fn inherit_dependencies(manifest: &mut Table, workspace: &Table) -> Result<()> {
    let shared_deps = workspace
        .get("dependencies")
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Table(dev)) = manifest.get_mut("dev-dependencies") {
        dev.retain(|name, _| !BENCH_ONLY_DEV_DEPENDENCIES.contains(&name));
    }
    for section in ["dependencies", "dev-dependencies"] {
        let Some(Value::Table(deps)) = manifest.get_mut(section) else {
            continue;
        };
        for (name, value) in deps.iter_mut() {
            if inherits_workspace(value) {
                *value = Value::Table(resolve_dependency(name, value, &shared_deps)?);
            }
        }
    }
    Ok(())
}

/// The workspace's entry for `name`, its path made relative to the crate,
/// with the crate's own keys (`features` added to the workspace's) on top.
fn resolve_dependency(name: &str, local: &Value, shared_deps: &Table) -> Result<Table> {
    let mut resolved = match shared_deps.get(name) {
        Some(Value::String(version)) => {
            Table::from_iter([("version".to_owned(), Value::String(version.clone()))])
        }
        Some(Value::Table(t)) => t.clone(),
        _ => bail!("workspace.dependencies.{name} is missing"),
    };
    // A path in the root manifest is relative to the repository root;
    // in the stamped project both crates sit side by side under crates/.
    if let Some(Value::String(path)) = resolved.get("path").cloned() {
        let sibling = path.strip_prefix("crates/").unwrap_or(&path);
        resolved.insert("path".to_owned(), Value::String(format!("../{sibling}")));
    }
    let local = local.as_table().cloned().unwrap_or_default();
    for (key, extra) in local {
        match (key.as_str(), resolved.get_mut("features"), extra) {
            ("workspace", ..) => {}
            ("features", Some(Value::Array(features)), Value::Array(more)) => features.extend(more),
            (_, _, extra) => {
                resolved.insert(key, extra);
            }
        }
    }
    Ok(resolved)
}

/// The `supabase` feature: on by default in a supabase stamp; in any
/// other, declared but enabling nothing, off, and the dependencies only it
/// enabled dropped.
fn set_supabase_feature(manifest: &mut Table, strategy: &str) {
    let Some(Value::Table(features)) = manifest.get_mut("features") else {
        return;
    };
    let enables_supabase = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|f| f.as_str() == Some("supabase")))
    };
    if strategy == "supabase" {
        // Only where the crate has a default set of its own that lacks it.
        if features.contains_key("supabase")
            && let Some(Value::Array(default)) = features.get_mut("default")
            && !enables_supabase(&Value::Array(default.clone()))
        {
            default.push(Value::String("supabase".to_owned()));
        }
    } else if let Some(Value::Array(enabled)) = features.get_mut("supabase") {
        // Kept declared but enabling nothing, so `cfg(feature = "supabase")`
        // stays a known condition; off by default.
        let only_through_supabase: Vec<String> = enabled
            .iter()
            .filter_map(|f| f.as_str()?.strip_prefix("dep:").map(str::to_owned))
            .collect();
        enabled.clear();
        if let Some(Value::Array(default)) = features.get_mut("default") {
            default.retain(|f| f.as_str() != Some("supabase"));
        }
        if let Some(Value::Table(deps)) = manifest.get_mut("dependencies") {
            for dep in only_through_supabase {
                deps.remove(&dep);
            }
        }
    }
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file (and symbolic link, which is never followed) under `dir`,
/// sorted; none when `dir` is not a folder.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in
            fs::read_dir(&folder).with_context(|| format!("cannot read {}", folder.display()))?
        {
            let entry = entry?;
            // `file_type` does not follow links: a linked folder is listed,
            // never entered.
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `file` relative to `root`, `/`-separated.
fn relative_path(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap_or(file);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tampered record cannot point the tools outside the project, nor
    /// hand git an option or a moving reference.
    #[test]
    fn records_naming_paths_outside_the_kit_are_refused() {
        let hash = "0".repeat(64);
        let commit = "a".repeat(40);
        for path in [
            "../outside",
            "/etc/passwd",
            "crates/../../outside",
            "crates/auth-kit/./src/lib.rs",
            "crates//x",
            "src/main.rs",
            "crates\\..\\x",
        ] {
            let text = format!(
                "# kit-version: 0.1.0\n# commit: {commit}\n# dirty: false\n# strategy: jwt\n{hash}  {path}\n"
            );
            let e = Provenance::parse(&text, Path::new(".kit-stamp")).unwrap_err();
            assert!(e.to_string().contains("outside the kit"), "{path}: {e}");
        }
        for commit in ["HEAD~5", "--upload-pack=x", "c0ffee"] {
            let text = format!(
                "# kit-version: 0.1.0\n# commit: {commit}\n# dirty: false\n# strategy: jwt\n"
            );
            let e = Provenance::parse(&text, Path::new(".kit-stamp")).unwrap_err();
            assert!(
                e.to_string().contains("not a full git hash"),
                "{commit}: {e}"
            );
        }
        assert!(is_kit_path("crates/auth-kit/src/lib.rs") && is_kit_path("docs/contract.md"));
    }

    #[cfg(unix)]
    #[test]
    fn linked_files_and_folders_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "key").unwrap();
        fs::create_dir_all(dir.path().join("crates")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("crates/auth-kit")).unwrap();
        assert!(is_linked(dir.path(), "crates/auth-kit/secret"));
        assert!(!is_linked(dir.path(), "crates/other/file"));
        let mut files = BTreeMap::new();
        files.insert("crates/auth-kit/secret".to_owned(), b"key".to_vec());
        let record = Provenance::of("0.1.0", &"a".repeat(40), false, "jwt", &files);
        assert_eq!(
            changes(dir.path(), &record).unwrap(),
            vec![(Change::Changed, "crates/auth-kit/secret".to_owned())],
            "a linked file counts as changed, and is not read"
        );
    }

    #[test]
    fn provenance_round_trips_and_is_sha256sum_format() {
        let files = BTreeMap::from([
            (
                "crates/auth-kit/src/lib.rs".to_owned(),
                b"fn a() {}\n".to_vec(),
            ),
            ("docs/troubleshooting.md".to_owned(), b"# T\n".to_vec()),
        ]);
        let record = Provenance::of("0.1.0", &"a".repeat(40), true, "oauth2", &files);
        let text = record.render();
        assert_eq!(Provenance::parse(&text, Path::new("x")).unwrap(), record);
        let line = text
            .lines()
            .find(|l| l.ends_with("docs/troubleshooting.md"))
            .unwrap();
        assert_eq!(
            line,
            format!("{}  docs/troubleshooting.md", sha256_hex(b"# T\n"))
        );
        let broken = text.replace("# dirty: true\n", "");
        let e = Provenance::parse(&broken, Path::new("p/.kit-stamp")).unwrap_err();
        assert!(e.to_string().contains("no `# dirty:` line"), "{e}");
    }

    #[test]
    fn status_finds_changed_missing_and_added_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = BTreeMap::from([
            ("crates/auth-kit/src/a.rs".to_owned(), b"a\n".to_vec()),
            ("crates/auth-kit/src/b.rs".to_owned(), b"b\n".to_vec()),
            ("crates/auth-kit/src/c.rs".to_owned(), b"c\n".to_vec()),
        ]);
        for (path, bytes) in &files {
            let file = dir.path().join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, bytes).unwrap();
        }
        let record = Provenance::of("0.1.0", &"c0ffee00".repeat(5), false, "jwt", &files);
        assert!(changes(dir.path(), &record).unwrap().is_empty());
        fs::write(dir.path().join("crates/auth-kit/src/a.rs"), "mine\n").unwrap();
        fs::remove_file(dir.path().join("crates/auth-kit/src/b.rs")).unwrap();
        fs::write(dir.path().join("crates/auth-kit/src/new.rs"), "new\n").unwrap();
        fs::create_dir_all(dir.path().join("crates/auth-kit/target")).unwrap();
        fs::write(dir.path().join("crates/auth-kit/target/x"), "build\n").unwrap();
        assert_eq!(
            changes(dir.path(), &record).unwrap(),
            vec![
                (Change::Changed, "crates/auth-kit/src/a.rs".to_owned()),
                (Change::Missing, "crates/auth-kit/src/b.rs".to_owned()),
                (Change::Added, "crates/auth-kit/src/new.rs".to_owned()),
            ]
        );
    }

    /// `cargo fmt` in a jwt or oauth2 project follows every `mod`: none may
    /// name a file the stamp does not carry. Runs in the repository and in
    /// every stamp (this crate's tests travel with it).
    #[test]
    fn other_stamps_declare_no_module_they_lack() {
        let (declaring, declared, emptied) = SUPABASE_MODULE;
        // This crate's own file: the repository's and a supabase stamp's
        // declare the module, another stamp's holds it inline.
        let own = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/validate.rs"))
            .unwrap();
        assert_eq!(
            own.matches(declared).count() + own.matches(emptied).count(),
            1,
            "SUPABASE_MODULE no longer matches src/validate.rs"
        );
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join(declaring);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, own.replace(emptied, declared)).unwrap();
        let source = WorkingTree(scratch.path().to_owned());
        for strategy in ["jwt", "oauth2", "supabase"] {
            let carried = strategy == "supabase";
            assert_eq!(
                copied_from_crate("auth-cli", SUPABASE_ONLY[0], strategy),
                carried
            );
            let rendered = render_file(&source, declaring, strategy).unwrap().unwrap();
            let rendered = String::from_utf8(rendered).unwrap();
            assert_eq!(rendered.contains(declared), carried, "{strategy}");
            assert_eq!(rendered.contains(emptied), !carried, "{strategy}");
        }
    }

    #[test]
    fn other_stamps_drop_the_supabase_feature() {
        let root = "[workspace]\n[workspace.package]\nversion = \"0.1.0\"\n[workspace.dependencies]\nx = \"1\"\n";
        let krate = "[package]\nname = \"c\"\nversion.workspace = true\n[features]\ndefault = [\"supabase\"]\nsupabase = [\"dep:x\"]\n[dependencies]\nx = { workspace = true, optional = true }\n";
        let jwt = standalone_manifest(krate, root, "jwt").unwrap();
        let parsed: toml::Table = jwt.parse().unwrap();
        assert_eq!(parsed["features"]["default"].as_array().unwrap().len(), 0);
        assert_eq!(parsed["features"]["supabase"].as_array().unwrap().len(), 0);
        assert!(
            !jwt.contains("[dependencies.x]") && !jwt.contains("x ="),
            "{jwt}"
        );
        let supabase = standalone_manifest(krate, root, "supabase").unwrap();
        let parsed: toml::Table = supabase.parse().unwrap();
        assert_eq!(parsed["features"]["default"][0].as_str(), Some("supabase"));
        assert_eq!(parsed["package"]["version"].as_str(), Some("0.1.0"));
    }
}
