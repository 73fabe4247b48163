//! `cargo xtask new`, through the real binary.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn xtask(args: &[&str], cwd: &Path) -> Output {
    Command::new(XTASK)
        .args(args)
        .current_dir(cwd)
        .env("CARGO_NAME", "test")
        .output()
        .unwrap()
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What `cargo xtask new` adds to the rendered template.
fn is_addition(path: &str) -> bool {
    path.starts_with("crates/")
        || path == "Cargo.lock"
        || path == ".env"
        || path == "docs/troubleshooting.md"
        || path == "docs/account-lifecycle.md"
}

/// The templates are real cargo-generate templates: rendering one through
/// cargo-generate's own command line (`cargo generate --path
/// templates/<t> --name my-api`, here from its library via `xtask generate`)
/// gives exactly the files `cargo xtask new` stamps, minus what `new` adds.
#[test]
fn new_renders_what_cargo_generate_renders() {
    for (strategy, template) in [
        ("jwt", "jwt_auth"),
        ("oauth2", "oauth2_flow"),
        ("supabase", "supabase_auth"),
    ] {
        let template_dir = repo().join("templates").join(template);
        if !template_dir.exists() {
            eprintln!("{strategy}: template not present yet, skipped");
            continue;
        }
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("cli")).unwrap();
        let cli_dest = work.path().join("cli");
        let cli = xtask(
            &[
                "generate",
                "--path",
                template_dir.to_str().unwrap(),
                "--name",
                "my-api",
                "--destination",
                cli_dest.to_str().unwrap(),
                "--vcs",
                "none",
            ],
            work.path(),
        );
        assert!(
            cli.status.success(),
            "{strategy}: {}",
            String::from_utf8_lossy(&cli.stderr)
        );
        let stamped = xtask(
            &[
                "new",
                "--strategy",
                strategy,
                "--name",
                "my-api",
                "--dest",
                "stamped",
            ],
            work.path(),
        );
        assert!(
            stamped.status.success(),
            "{strategy}: {}",
            String::from_utf8_lossy(&stamped.stderr)
        );

        let rendered = tree(&work.path().join("cli/my-api"));
        let mut from_new = tree(&work.path().join("stamped"));
        from_new.retain(|path, _| !is_addition(path));
        assert_eq!(
            rendered.keys().collect::<Vec<_>>(),
            from_new.keys().collect::<Vec<_>>(),
            "{strategy}: the same files"
        );
        for (path, bytes) in &rendered {
            assert!(bytes == &from_new[path], "{strategy}: {path} differs");
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("{{") && !text.contains("{%"),
                "{strategy}: {path} has an unrendered placeholder"
            );
        }
        assert!(String::from_utf8_lossy(&rendered["Cargo.toml"]).contains("name = \"my-api\""));
        let stamped_tree = tree(&work.path().join("stamped"));
        for added in [
            "Cargo.lock",
            ".env",
            "docs/troubleshooting.md",
            "crates/auth-kit/Cargo.toml",
            "crates/auth-kit/src/lib.rs",
        ] {
            assert!(
                stamped_tree.contains_key(added),
                "{strategy}: {added} is missing"
            );
        }
        assert_eq!(
            stamped_tree.contains_key("docs/account-lifecycle.md"),
            strategy != "supabase",
            "{strategy}: the account-lifecycle guide comes with the services that have those routes"
        );
        assert_eq!(
            stamped_tree["Cargo.lock"],
            std::fs::read(repo().join("Cargo.lock")).unwrap(),
            "this repository's lock file"
        );
    }
}

#[test]
fn env_file_is_private_and_has_a_fresh_key() {
    let work = tempfile::tempdir().unwrap();
    for dest in ["a", "b"] {
        let out = xtask(
            &[
                "new",
                "--strategy",
                "oauth2",
                "--name",
                "keyed",
                "--dest",
                dest,
            ],
            work.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = |dest: &str| {
        let env = std::fs::read_to_string(work.path().join(dest).join(".env")).unwrap();
        env.lines()
            .find_map(|l| l.strip_prefix("SECRET_KEY="))
            .unwrap()
            .to_owned()
    };
    assert_eq!(key("a").len(), 64);
    assert_ne!(key("a"), key("b"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(work.path().join("a/.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// One clear line, a non-zero exit, and nothing written.
fn check_refused(args: &[&str], prepare: impl Fn(&Path), expected: &str) {
    let work = tempfile::tempdir().unwrap();
    prepare(work.path());
    let before = tree(work.path());
    let out = xtask(args, work.path());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "one line for {args:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(expected),
        "{args:?}: {stderr}"
    );
    let mut entries: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        tree(work.path()),
        before,
        "{args:?} changed files: {entries:?}"
    );
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let nothing = |_: &Path| {};
    check_refused(
        &["new", "--strategy", "oauth2", "--name", "My API"],
        nothing,
        "is not a valid project name",
    );
    check_refused(
        &["new", "--strategy", "oauth2", "--name", "auth-kit"],
        nothing,
        "is reserved",
    );
    check_refused(
        &["new", "--strategy", "saml", "--name", "my-api"],
        nothing,
        "unknown strategy 'saml'",
    );
    let occupied = |dir: &Path| {
        std::fs::create_dir(dir.join("my-api")).unwrap();
        std::fs::write(dir.join("my-api/notes.txt"), "keep me").unwrap();
    };
    check_refused(
        &["new", "--strategy", "jwt", "--name", "my-api"],
        occupied,
        "is not empty",
    );
    let file = |dir: &Path| std::fs::write(dir.join("my-api"), "a file").unwrap();
    check_refused(
        &["new", "--strategy", "jwt", "--name", "my-api"],
        file,
        "is not a folder",
    );
    let repository = |dir: &Path| {
        std::fs::create_dir_all(dir.join("my-api/.git")).unwrap();
        std::fs::write(dir.join("my-api/src.rs"), "work").unwrap();
    };
    check_refused(
        &["new", "--strategy", "jwt", "--name", "my-api", "--force"],
        repository,
        "is a git repository",
    );
}

#[test]
fn force_replaces_and_an_empty_folder_is_used() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("empty")).unwrap();
    let out = xtask(
        &[
            "new",
            "--strategy",
            "jwt",
            "--name",
            "svc",
            "--dest",
            "empty",
        ],
        work.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(work.path().join("empty/stale.txt"), "old").unwrap();
    let out = xtask(
        &[
            "new",
            "--strategy",
            "oauth2",
            "--name",
            "svc",
            "--dest",
            "empty",
            "--force",
        ],
        work.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!work.path().join("empty/stale.txt").exists());
    assert!(
        std::fs::read_to_string(work.path().join("empty/README.md"))
            .unwrap()
            .contains("scopes")
    );
    // No staging or swap folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "empty")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
