//! `cargo xtask upgrade --project DIR [--check] [--from REPO]`: brings a
//! stamped project's copy of the kit to the kit of REPO's HEAD commit
//! (REPO: this repository unless `--from` names another clone).
//!
//! Three versions of each kit file meet:
//! - base: the kit as stamped, produced from the commit in the project's
//!   provenance record (`.kit-stamp`) by the stamper's own copy code;
//! - theirs: the kit as REPO's HEAD commit produces it;
//! - ours: the project's file.
//!
//! A file the project never changed (its SHA-256 is the recorded one) is
//! replaced; a file changed on both sides is merged three ways (diffy),
//! and where both changed the same lines the file gets conflict markers,
//! is listed, and the command exits 1; files new upstream (a migration)
//! are added, and files deleted upstream are removed unless the project
//! changed them. Committed history only: the record must not be `dirty`.
//!
//! Everything is written into a staging folder inside the project first;
//! only when every file is staged are they moved into place (the replaced
//! files moved aside, and put back should a move fail), the provenance
//! record last. An upgrade interrupted while staging leaves the project as
//! it was. The stamp manifest (`.xtask-stamp`, what `cargo xtask new
//! --force` may replace) follows the files the upgrade wrote for a project
//! that had left them as stamped; a file the project changed keeps its old
//! hash there, so it still counts as the project's own work. `--check` computes the same and changes nothing: it lists what
//! would change, and the conflict markers left by an earlier upgrade, and
//! exits 1 when there is anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use auth_cli::kit::{GitCommit, KitSource as _, PROVENANCE, Provenance, kit_files, sha256_hex};

use crate::repo;

/// Arguments of `cargo xtask upgrade`.
#[derive(clap::Args, Debug)]
pub struct UpgradeArgs {
    /// The stamped project to upgrade.
    #[arg(long)]
    pub project: PathBuf,
    /// Only report what would change; exit 1 when anything would (or when
    /// conflict markers are left in the kit's files).
    #[arg(long)]
    pub check: bool,
    /// The auth-kit repository to upgrade from (default: this one); its
    /// HEAD commit is the new kit.
    #[arg(long)]
    pub from: Option<PathBuf>,
}

/// What happens to one kit file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Unchanged here, changed upstream: the new version.
    Replace(Vec<u8>),
    /// Changed on both sides, merged without conflict.
    Merge(Vec<u8>),
    /// Changed on both sides in the same lines: written with markers.
    Conflict(Vec<u8>),
    /// New upstream.
    Add(Vec<u8>),
    /// Deleted upstream, unchanged here.
    Remove,
    /// Deleted here, changed upstream: left deleted, listed as a conflict.
    DeletedHere,
    /// Deleted upstream, changed here: kept as the project's own file.
    KeptHere,
    /// Conflict markers from an earlier upgrade are still in the file.
    Unresolved,
}

impl Action {
    fn label(&self) -> &'static str {
        match self {
            Action::Replace(_) => "replace",
            Action::Merge(_) => "merge",
            Action::Conflict(_) => "conflict",
            Action::Add(_) => "add",
            Action::Remove => "remove",
            Action::DeletedHere => "conflict",
            Action::KeptHere => "keep",
            Action::Unresolved => "unresolved",
        }
    }

    fn note(&self) -> &'static str {
        match self {
            Action::Replace(_) => "unchanged here, changed upstream",
            Action::Merge(_) => "changed on both sides, merged",
            Action::Conflict(_) => "changed on both sides in the same lines: markers written",
            Action::Add(_) => "new upstream",
            Action::Remove => "deleted upstream, unchanged here",
            Action::DeletedHere => "deleted here, changed upstream: left deleted",
            Action::KeptHere => "deleted upstream, changed here: kept as your own file",
            Action::Unresolved => "conflict markers from an upgrade are still in it",
        }
    }

    fn is_conflict(&self) -> bool {
        matches!(
            self,
            Action::Conflict(_) | Action::DeletedHere | Action::Unresolved
        )
    }

    /// The new contents, when the file is written.
    fn contents(&self) -> Option<&[u8]> {
        match self {
            Action::Replace(c) | Action::Merge(c) | Action::Conflict(c) | Action::Add(c) => Some(c),
            _ => None,
        }
    }
}

pub fn run(args: &UpgradeArgs) -> Result<()> {
    let project = &args.project;
    if !project.is_dir() {
        bail!(
            "{} is not a folder: pass the stamped project's folder with --project",
            project.display()
        );
    }
    let record = Provenance::read(project)?;
    if record.commit == "unknown" || record.dirty {
        bail!(
            "{} was stamped from a working tree whose kit had uncommitted changes (`dirty: true` in {PROVENANCE}), so no commit holds the kit it got: compare it by hand (`cargo auth kit diff`), or stamp afresh from a clean checkout and move your code over",
            project.display()
        );
    }
    // A staging folder left behind means an earlier upgrade was killed while
    // it moved files: what it set aside is there, and must be looked at first.
    if let Some(left) = fs::read_dir(project)
        .with_context(|| format!("cannot read {}", project.display()))?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(".kit-upgrade-"))
    {
        bail!(
            "{} is left from an interrupted upgrade and may hold files it set aside: compare them with the project's, then remove the folder and run the upgrade again",
            left.path().display()
        );
    }
    let from = args.from.clone().unwrap_or_else(|| repo::root().to_owned());
    let base_source = GitCommit::open(&from, &record.commit)?;
    let theirs_source = GitCommit::open(&from, "HEAD")?;
    let base = kit_files(&base_source, &record.strategy)?;
    let theirs = kit_files(&theirs_source, &record.strategy)?;
    let steps = plan(project, &record, &base, &theirs)?;
    let new_version = kit_version(&theirs_source)?;

    let short = |c: &str| c.chars().take(12).collect::<String>();
    println!(
        "The kit of {}: {} at {} -> {} at {} ({} template)",
        project.display(),
        record.kit_version,
        short(&record.commit),
        new_version,
        short(theirs_source.commit()),
        record.strategy
    );
    for (path, action) in &steps {
        println!("  {:<10} {path}  ({})", action.label(), action.note());
    }
    let conflicts: Vec<&str> = steps
        .iter()
        .filter(|(_, a)| a.is_conflict())
        .map(|(p, _)| p.as_str())
        .collect();
    if args.check {
        if steps.is_empty() {
            println!("Nothing to upgrade.");
            return Ok(());
        }
        bail!(
            "{} kit file{} to upgrade ({} conflicting): run `cargo xtask upgrade --project {}`{}",
            steps.len(),
            if steps.len() == 1 { "" } else { "s" },
            conflicts.len(),
            project.display(),
            if steps.iter().any(|(_, a)| *a == Action::Unresolved) {
                ", and resolve the conflict markers left in the files listed as unresolved"
            } else {
                ""
            }
        );
    }
    if steps.iter().any(|(_, a)| matches!(a, Action::Unresolved)) {
        bail!(
            "conflict markers from an earlier upgrade are still in {}: resolve them first",
            conflicts.join(", ")
        );
    }
    let record_after = Provenance::of(
        &new_version,
        theirs_source.commit(),
        false,
        &record.strategy,
        &theirs,
    );
    apply(project, &steps, &record_after)?;
    if conflicts.is_empty() {
        println!(
            "Upgraded {} kit file{}. Build and test the project (`cargo test --workspace`).",
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        );
        return Ok(());
    }
    bail!(
        "{} conflict{} in {}: resolve the <<<<<<< markers (ours, original, theirs), then build and test",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" },
        conflicts.join(", ")
    )
}

/// The kit's version at a commit: the repository's workspace version.
fn kit_version(source: &GitCommit) -> Result<String> {
    let manifest = source
        .read("Cargo.toml")?
        .context("the repository has no Cargo.toml at HEAD")?;
    let manifest: toml::Table = String::from_utf8_lossy(&manifest)
        .parse()
        .context("the repository's Cargo.toml at HEAD is not valid TOML")?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .context("the repository's Cargo.toml at HEAD has no workspace.package.version")
}

/// What happens to each kit file, by path; files nothing happens to are left out.
fn plan(
    project: &Path,
    record: &Provenance,
    base: &BTreeMap<String, Vec<u8>>,
    theirs: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Action)>> {
    let paths: BTreeSet<&String> = record.files.keys().chain(theirs.keys()).collect();
    let mut steps = Vec::new();
    for path in paths {
        if auth_cli::kit::is_linked(project, path) {
            bail!(
                "{path} in {} is, or lies in, a symbolic link: the upgrade never follows one; replace it with the file or folder itself",
                project.display()
            );
        }
        let file = project.join(path);
        let ours = match fs::read(&file) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let recorded = record.files.get(path);
        let untouched = ours.as_deref().map(sha256_hex).as_ref() == recorded;
        let action = match (recorded, ours, theirs.get(path)) {
            (_, Some(ours), Some(theirs)) if ours == *theirs => None,
            (Some(_), Some(_), Some(theirs)) if untouched => Some(Action::Replace(theirs.clone())),
            // Markers left from an earlier upgrade: never merged over.
            (_, Some(ours), Some(_)) if has_markers(&ours) => Some(Action::Unresolved),
            (Some(_), Some(ours), Some(theirs)) => {
                if base.get(path) == Some(theirs) {
                    // Changed here only.
                    has_markers(&ours).then_some(Action::Unresolved)
                } else {
                    Some(merge(
                        base.get(path).map_or(&[][..], Vec::as_slice),
                        &ours,
                        theirs,
                    ))
                }
            }
            (Some(_), None, Some(theirs)) => {
                (base.get(path) != Some(theirs)).then_some(Action::DeletedHere)
            }
            (None, Some(ours), Some(theirs)) => Some(merge(&[], &ours, theirs)),
            (None, None, Some(theirs)) => Some(Action::Add(theirs.clone())),
            (Some(_), Some(_), None) if untouched => Some(Action::Remove),
            (Some(_), Some(_), None) => Some(Action::KeptHere),
            (_, None, None) | (None, Some(_), None) => None,
        };
        if let Some(action) = action {
            steps.push((path.clone(), action));
        }
    }
    Ok(steps)
}

/// The three-way merge of one file (the base as ancestor).
fn merge(base: &[u8], ours: &[u8], theirs: &[u8]) -> Action {
    match diffy::merge_bytes(base, ours, theirs) {
        Ok(merged) => Action::Merge(merged),
        Err(with_markers) => Action::Conflict(with_markers),
    }
}

/// Whether `bytes` holds a conflict block as a merge writes it.
fn has_markers(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let starts = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
    starts("<<<<<<< ") && starts(">>>>>>> ")
}

/// Stages every new file, then moves them into place; on a failed move,
/// puts back what was moved.
fn apply(project: &Path, steps: &[(String, Action)], record: &Provenance) -> Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(".kit-upgrade-")
        .tempdir_in(project)
        .with_context(|| format!("cannot write in {}", project.display()))?;
    let new_dir = staging.path().join("new");
    let old_dir = staging.path().join("old");
    let mut moves: Vec<(String, bool)> = Vec::new();
    for (path, action) in steps {
        if let Some(contents) = action.contents() {
            stage(&new_dir.join(path), contents, &project.join(path))?;
            moves.push((path.clone(), true));
        } else if *action == Action::Remove {
            moves.push((path.clone(), false));
        }
    }
    let rendered = record.render();
    if let Some(manifest) = restamped_manifest(project, steps, rendered.as_bytes())? {
        stage(
            &new_dir.join(crate::new::MANIFEST),
            manifest.as_bytes(),
            &project.join(crate::new::MANIFEST),
        )?;
        moves.push((crate::new::MANIFEST.to_owned(), true));
    }
    stage(
        &new_dir.join(PROVENANCE),
        rendered.as_bytes(),
        &project.join(PROVENANCE),
    )?;
    moves.push((PROVENANCE.to_owned(), true));

    // Every file is staged: move them into place. A file replaced is first
    // linked (or copied) aside and then replaced by one rename, so at no
    // moment is it missing; a file removed is renamed aside.
    let mut done: Vec<(&str, bool, bool)> = Vec::new();
    for (path, write) in &moves {
        let target = project.join(path);
        let aside = old_dir.join(path);
        let had_file = target.exists();
        let moved = (|| -> Result<()> {
            if had_file {
                create_parent(&aside)?;
                let kept = if *write {
                    fs::hard_link(&target, &aside)
                        .or_else(|_| fs::copy(&target, &aside).map(|_| ()))
                } else {
                    fs::rename(&target, &aside)
                };
                kept.with_context(|| format!("cannot set {} aside", target.display()))?;
            }
            if *write {
                create_parent(&target)?;
                fs::rename(new_dir.join(path), &target)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
            Ok(())
        })();
        if let Err(e) = moved {
            let mut undone = true;
            for (path, write, had_file) in done.into_iter().rev() {
                let target = project.join(path);
                let restored = if had_file {
                    fs::rename(old_dir.join(path), &target)
                } else if write {
                    fs::remove_file(&target)
                } else {
                    Ok(())
                };
                undone &= restored.is_ok();
            }
            if !undone {
                // Keep what was set aside: it is the only copy now.
                let kept = staging.keep();
                return Err(e.context(format!(
                    "the upgrade could not be fully undone: the project's replaced files are in {}; move them back by hand",
                    kept.join("old").display()
                )));
            }
            return Err(e.context("the upgrade was undone; the project is as it was"));
        }
        done.push((path, *write, had_file));
    }
    Ok(())
    // `staging`, with the replaced files, is removed when dropped.
}

/// The stamp manifest (`.xtask-stamp`) after the upgrade, or `None` when
/// the project has none. An entry that matched the file before follows the
/// file's new contents (or leaves with a removed file); a file new to the
/// project gets an entry; an entry that did not match (the project changed
/// the file) is kept as it was.
fn restamped_manifest(
    project: &Path,
    steps: &[(String, Action)],
    provenance: &[u8],
) -> Result<Option<String>> {
    let path = project.join(crate::new::MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let current = |relative: &str| -> Result<Option<String>> {
        match fs::read(project.join(relative)) {
            Ok(bytes) => Ok(Some(sha256_hex(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {relative}")),
        }
    };
    // What each written file will hold: `None` for a removed one.
    let mut after: BTreeMap<&str, Option<String>> = steps
        .iter()
        .filter_map(|(path, action)| match action {
            Action::Remove => Some((path.as_str(), None)),
            Action::Replace(c) | Action::Add(c) => Some((path.as_str(), Some(sha256_hex(c)))),
            _ => None,
        })
        .collect();
    after.insert(PROVENANCE, Some(sha256_hex(provenance)));
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let entry = line
            .split_once("  ")
            .filter(|_| !line.starts_with('#'))
            .and_then(|(hash, file)| after.get(file).map(|new| (hash, file, new)));
        match entry {
            Some((hash, file, new)) => {
                let followed = current(file)?.as_deref() == Some(hash);
                match new {
                    Some(new) if followed => out.push_str(&format!("{new}  {file}\n")),
                    None if followed => {}
                    _ => out.push_str(&format!("{line}\n")),
                }
                after.remove(file);
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    // Files the manifest did not list: added by this upgrade, or by an
    // earlier one; listed only when this upgrade added them.
    for (path, action) in steps {
        if let (Action::Add(c), Some(_)) = (action, after.get(path.as_str())) {
            out.push_str(&format!("{}  {path}\n", sha256_hex(c)));
        }
    }
    Ok(Some(out))
}

/// Writes `contents` at `staged`, with the permissions of the file it
/// replaces (`current`) when there is one.
fn stage(staged: &Path, contents: &[u8], current: &Path) -> Result<()> {
    create_parent(staged)?;
    fs::write(staged, contents).with_context(|| format!("cannot stage {}", staged.display()))?;
    if let Ok(metadata) = fs::metadata(current) {
        fs::set_permissions(staged, metadata.permissions())?;
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(folder) = path.parent() {
        fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(files: &BTreeMap<String, Vec<u8>>) -> Provenance {
        Provenance::of("0.1.0", "base", false, "oauth2", files)
    }

    #[test]
    fn plans_each_case() {
        let dir = tempfile::tempdir().unwrap();
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
                .collect()
        };
        let base = map(&[
            ("untouched", "a\n"),
            ("both", "1\n2\n3\n4\n5\n"),
            ("clash", "x\n"),
            ("gone-upstream", "g\n"),
            ("mine-only", "m\n"),
        ]);
        let theirs = map(&[
            ("untouched", "a2\n"),
            ("both", "1\n2\n3\n4\n5 upstream\n"),
            ("clash", "x upstream\n"),
            ("mine-only", "m\n"),
            ("new-migration", "n\n"),
        ]);
        let ours = map(&[
            ("untouched", "a\n"),
            ("both", "1 mine\n2\n3\n4\n5\n"),
            ("clash", "x mine\n"),
            ("gone-upstream", "g\n"),
            ("mine-only", "m mine\n"),
        ]);
        for (path, bytes) in &ours {
            fs::write(dir.path().join(path), bytes).unwrap();
        }
        let steps = plan(dir.path(), &record(&base), &base, &theirs).unwrap();
        let labels: Vec<(&str, &str)> =
            steps.iter().map(|(p, a)| (p.as_str(), a.label())).collect();
        assert_eq!(
            labels,
            [
                ("both", "merge"),
                ("clash", "conflict"),
                ("gone-upstream", "remove"),
                ("new-migration", "add"),
                ("untouched", "replace"),
            ]
        );
        assert_eq!(
            steps[0].1.contents().unwrap(),
            b"1 mine\n2\n3\n4\n5 upstream\n"
        );
        assert!(has_markers(steps[1].1.contents().unwrap()));
    }
}
