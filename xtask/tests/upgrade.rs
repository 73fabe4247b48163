//! `cargo xtask upgrade`, through the real binary, on a scratch clone of
//! this repository: a project stamped from the clone, a kit change
//! committed in the clone (an untouched file, a file the project changed
//! elsewhere, a file it changed in the same line, a new migration), then
//! `--check`, the upgrade, and `--check` again.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{stderr, stdout};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=upgrade-test",
            "-c",
            "user.email=upgrade@test",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn upgrade(project: &Path, clone: &Path, check: bool) -> Output {
    let mut args = vec![
        "upgrade",
        "--project",
        project.to_str().unwrap(),
        "--from",
        clone.to_str().unwrap(),
    ];
    if check {
        args.push("--check");
    }
    common::xtask(&args).output().unwrap()
}

/// Every file of the project and its contents (to show nothing changed).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().display().to_string(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

const UNTOUCHED: &str = "docs/troubleshooting.md";
const MERGED: &str = "crates/auth-kit/src/username.rs";
const CLASHING: &str = "crates/auth-kit/src/clock.rs";
const MIGRATION: &str = "crates/auth-kit/migrations/sqlite/99990101000000_upgrade_test.sql";

#[test]
fn upgrade_replaces_merges_and_stops_on_conflicts() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    let project = work.path().join("up-api");
    git(
        work.path(),
        &[
            "clone",
            "--local",
            "--quiet",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let stamped = common::xtask(&[
        "new",
        "--strategy",
        "oauth2",
        "--name",
        "up-api",
        "--dest",
        project.to_str().unwrap(),
        "--from",
        clone.to_str().unwrap(),
    ])
    .env("CARGO_NAME", "xtask-tests")
    .output()
    .unwrap();
    assert!(stamped.status.success(), "{}", stderr(&stamped));
    let record = fs::read_to_string(project.join(".kit-stamp")).unwrap();
    let stamped_at = git(&clone, &["rev-parse", "HEAD"]);
    assert!(
        record.contains(&format!("# commit: {stamped_at}\n")),
        "{record}"
    );
    assert!(record.contains("# dirty: false\n"), "{record}");

    // Nothing to do yet.
    let check = upgrade(&project, &clone, true);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("Nothing to upgrade."));

    // The project changes the first line of one file and the first line
    // of another.
    let edit = |path: &Path, f: &dyn Fn(&str) -> String| {
        let text = fs::read_to_string(path).unwrap();
        fs::write(path, f(&text)).unwrap();
    };
    edit(&project.join(MERGED), &|t| {
        format!("// Project: our note.\n{t}")
    });
    edit(&project.join(CLASHING), &|t| {
        let (first, rest) = t.split_once('\n').unwrap();
        format!("{first} (ours)\n{rest}")
    });
    // `cargo auth kit diff` shows the project's own changes against the
    // recorded commit (upstream's are not committed yet), and only those.
    let record = auth_cli::kit::Provenance::read(&project).unwrap();
    let diffs = auth_cli::kit::diffs(&project, &record, &clone, &[]).unwrap();
    for line in [
        &format!("--- a/{MERGED}"),
        &format!("+++ b/{MERGED}"),
        "+// Project: our note.",
        &format!("+++ b/{CLASHING}"),
    ] {
        assert!(diffs.lines().any(|l| l == line), "{line} in:\n{diffs}");
    }
    assert!(diffs.contains(" (ours)"), "{diffs}");
    assert!(!diffs.contains(UNTOUCHED), "{diffs}");
    let only = auth_cli::kit::diffs(&project, &record, &clone, &[MERGED.to_owned()]).unwrap();
    assert!(only.contains(MERGED) && !only.contains(CLASHING), "{only}");

    // Upstream changes the untouched file, the end of the merged one, the
    // first line of the clashing one, and adds a migration.
    edit(&clone.join(UNTOUCHED), &|t| {
        format!("{t}\nUpstream: a new section.\n")
    });
    edit(&clone.join(MERGED), &|t| {
        format!("{t}// Upstream: their note.\n")
    });
    edit(&clone.join(CLASHING), &|t| {
        let (first, rest) = t.split_once('\n').unwrap();
        format!("{first} (theirs)\n{rest}")
    });
    fs::write(clone.join(MIGRATION), "SELECT 1;\n").unwrap();
    git(&clone, &["add", "-A"]);
    git(&clone, &["commit", "--quiet", "-m", "a kit change"]);
    let upstream = git(&clone, &["rev-parse", "HEAD"]);

    // --check: lists each, changes nothing, exits 1.
    let before = snapshot(&project);
    let check = upgrade(&project, &clone, true);
    let out = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{out}{}", stderr(&check));
    for (label, path) in [
        ("replace", UNTOUCHED),
        ("merge", MERGED),
        ("conflict", CLASHING),
        ("add", MIGRATION),
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().take(2).eq([label, path])),
            "{label} {path} in:\n{out}"
        );
    }
    assert!(stderr(&check).contains("4 kit files to upgrade (1 conflicting)"));
    assert_eq!(snapshot(&project), before, "--check changed nothing");

    // The upgrade: replaced, merged, added; the conflict with markers, exit 1.
    let run = upgrade(&project, &clone, false);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    assert!(stderr(&run).contains(&format!("1 conflict in {CLASHING}")));
    let read = |path: &str| fs::read_to_string(project.join(path)).unwrap();
    assert_eq!(
        read(UNTOUCHED),
        fs::read_to_string(clone.join(UNTOUCHED)).unwrap()
    );
    let merged = read(MERGED);
    assert!(merged.starts_with("// Project: our note.\n"), "{merged}");
    assert!(merged.ends_with("// Upstream: their note.\n"), "{merged}");
    let clashing = read(CLASHING);
    for marker in [
        "<<<<<<< ours",
        "=======",
        ">>>>>>> theirs",
        "(ours)",
        "(theirs)",
    ] {
        assert!(clashing.contains(marker), "{marker} in {clashing}");
    }
    assert_eq!(read(MIGRATION), "SELECT 1;\n");
    let record = read(".kit-stamp");
    assert!(
        record.contains(&format!("# commit: {upstream}\n")),
        "{record}"
    );
    // The stamp manifest follows the files the project had left as stamped
    // (so `cargo xtask new --force` may still replace it), and keeps the old
    // hash of the files the project changed (so it may not).
    let manifest = read(".xtask-stamp");
    let listed = |path: &str| {
        manifest
            .lines()
            .find_map(|l| l.split_once("  ").filter(|(_, p)| *p == path))
            .map(|(hash, _)| hash.to_owned())
    };
    let hash = |path: &str| auth_cli::kit::sha256_hex(&fs::read(project.join(path)).unwrap());
    for path in [UNTOUCHED, MIGRATION, ".kit-stamp"] {
        assert_eq!(listed(path), Some(hash(path)), "{path} in:\n{manifest}");
    }
    for path in [MERGED, CLASHING] {
        let recorded = listed(path).unwrap();
        assert_ne!(recorded, hash(path), "{path} in:\n{manifest}");
    }
    let names: Vec<String> = fs::read_dir(&project)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".kit-upgrade-")),
        "no staging left: {names:?}"
    );

    // --check after: the markers are still there.
    let check = upgrade(&project, &clone, true);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check)
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["unresolved", CLASHING])),
        "{}",
        stdout(&check)
    );
    // Resolved (upstream's line kept): nothing left to do.
    fs::write(
        project.join(CLASHING),
        fs::read_to_string(clone.join(CLASHING)).unwrap(),
    )
    .unwrap();
    let check = upgrade(&project, &clone, true);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(stdout(&check).contains("Nothing to upgrade."));

    // A record that says the kit had uncommitted changes is refused, and so
    // is a project without one.
    let record = read(".kit-stamp");
    fs::write(
        project.join(".kit-stamp"),
        record.replace("# dirty: false", "# dirty: true"),
    )
    .unwrap();
    let refused = upgrade(&project, &clone, true);
    common::assert_one_line_error(&refused, "uncommitted changes");
    fs::remove_file(project.join(".kit-stamp")).unwrap();
    let refused = upgrade(&project, &clone, true);
    common::assert_one_line_error(&refused, "has no provenance record (.kit-stamp)");
}
