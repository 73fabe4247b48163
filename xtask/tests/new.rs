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
        || path == ".xtask-stamp"
        || path == ".kit-stamp"
        || path.starts_with("docs/")
}

/// The templates are real cargo-generate templates: rendering one through
/// cargo-generate's own command line (`cargo generate --path
/// templates/<t> --name my-api`, here from its library via `xtask generate`)
/// gives exactly the files `cargo xtask new` stamps, minus what `new` adds.
/// The jwt and supabase templates are first written whole by `cargo xtask
/// templates --template <t> --out`.
#[test]
fn new_renders_what_cargo_generate_renders() {
    for (strategy, template) in [
        ("jwt", "jwt_auth"),
        ("oauth2", "oauth2_flow"),
        ("supabase", "supabase_auth"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let template_dir = if strategy != "oauth2" {
            let out = work.path().join(template);
            let written = xtask(
                &[
                    "templates",
                    "--template",
                    strategy,
                    "--out",
                    out.to_str().unwrap(),
                ],
                work.path(),
            );
            assert!(
                written.status.success(),
                "{}",
                String::from_utf8_lossy(&written.stderr)
            );
            out
        } else {
            repo().join("templates").join(template)
        };
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
            "docs/contract.md",
            "crates/auth-kit/Cargo.toml",
            "crates/auth-kit/src/lib.rs",
            "crates/auth-kit/tests/hostile_tokens.rs",
            // The earlier kit's migrations, which the upgrade test embeds.
            "crates/auth-kit/testing/kit-migrations-0006/sqlite/0006_list_indexes.sql",
            "crates/auth-kit/testing/kit-migrations-0006/postgres/0006_list_indexes.sql",
        ] {
            assert!(
                stamped_tree.contains_key(added),
                "{strategy}: {added} is missing"
            );
        }
        if strategy != "supabase" {
            // A stamp carries only what its strategy uses: auth-kit without
            // a word of the Supabase half, and no item scope or marker (the
            // service's own policy declares those).
            for (path, bytes) in stamped_tree
                .iter()
                .filter(|(path, _)| path.starts_with("crates/auth-kit/src/"))
            {
                let text = String::from_utf8_lossy(bytes).to_lowercase();
                assert!(
                    !text.contains("supabase"),
                    "{strategy}: {path} names Supabase"
                );
                for item_policy in [
                    "struct readitems",
                    "struct writeitems",
                    "struct deleteitems",
                    "const standard: policyspec",
                    "fn standard()",
                ] {
                    assert!(
                        !text.contains(item_policy),
                        "{strategy}: {path} declares a policy or an item marker ({item_policy})"
                    );
                }
            }
            assert!(
                !stamped_tree
                    .keys()
                    .any(|p| p.starts_with("crates/auth-kit-supabase/")),
                "{strategy}: the Supabase crate is not carried"
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
        "invalid value 'saml' for '--strategy <STRATEGY>' [possible values: jwt, oauth2, supabase]",
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

fn stamp(work: &Path, strategy: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "new",
        "--strategy",
        strategy,
        "--name",
        "svc",
        "--dest",
        "svc",
    ];
    args.extend_from_slice(extra);
    xtask(&args, work)
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_refused(out: &std::process::Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "replaced: {expected}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
}

/// `--force` replaces a previous stamp (also one cargo has built), and
/// nothing else: not a file it did not make, not a file changed since, not
/// a folder without its manifest.
#[test]
fn force_replaces_only_an_unchanged_previous_stamp() {
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("svc");
    std::fs::create_dir(&dest).unwrap();
    assert_ok(&stamp(work.path(), "jwt", &[])); // an empty folder is used
    let manifest = std::fs::read_to_string(dest.join(".xtask-stamp")).unwrap();
    assert!(manifest.contains("  src/lib.rs\n"), "{manifest}");
    assert!(manifest.contains("  .env\n"), "{manifest}");
    assert_refused(&stamp(work.path(), "oauth2", &[]), "pass --force");
    assert_ok(&stamp(work.path(), "oauth2", &["--force"]));
    assert!(
        std::fs::read_to_string(dest.join("README.md"))
            .unwrap()
            .contains("scopes")
    );
    // What cargo leaves behind is no reason to refuse.
    std::fs::write(dest.join("Cargo.lock"), "# rewritten by cargo\n").unwrap();
    std::fs::create_dir_all(dest.join("target/debug")).unwrap();
    std::fs::write(
        dest.join("target/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55",
    )
    .unwrap();
    std::fs::write(dest.join("target/debug/svc"), "binary").unwrap();
    assert_ok(&stamp(work.path(), "oauth2", &["--force"]));

    type Change<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Change, &str); 5] = [
        (
            "a file of its own",
            &|d: &Path| std::fs::write(d.join("notes.txt"), "keep me").unwrap(),
            "notes.txt was not made by `cargo xtask new`",
        ),
        (
            "an edited source",
            &|d: &Path| std::fs::write(d.join("src/lib.rs"), "// mine now").unwrap(),
            "src/lib.rs was changed since it was stamped",
        ),
        (
            "a changed .env",
            &|d: &Path| std::fs::write(d.join(".env"), "SECRET_KEY=theirs\n").unwrap(),
            ".env was changed since it was stamped",
        ),
        (
            "a database",
            &|d: &Path| std::fs::write(d.join("svc.db"), "SQLite format 3").unwrap(),
            "svc.db was not made by `cargo xtask new`",
        ),
        (
            "no manifest",
            &|d: &Path| std::fs::remove_file(d.join(".xtask-stamp")).unwrap(),
            "it is not a previous stamp",
        ),
    ];
    for (what, change, expected) in cases {
        std::fs::remove_dir_all(&dest).unwrap();
        assert_ok(&stamp(work.path(), "oauth2", &[]));
        change(&dest);
        let before = tree(&dest);
        assert_refused(&stamp(work.path(), "oauth2", &["--force"]), expected);
        assert_eq!(tree(&dest), before, "{what}: the folder is left as it was");
    }
    // No staging or swap folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "svc")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `--force` never replaces a home folder, a folder holding one, or the
/// file system's root, whatever they hold.
#[test]
fn force_never_replaces_home_or_a_root() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join(".profile"), "mine").unwrap();
    for (dest, expected) in [
        (
            home.to_str().unwrap(),
            "it is your home folder, or holds it",
        ),
        (
            work.path().to_str().unwrap(),
            "it is your home folder, or holds it",
        ),
        ("/", "refusing to replace /"),
    ] {
        let out = Command::new(XTASK)
            .args([
                "new",
                "--strategy",
                "jwt",
                "--name",
                "svc",
                "--dest",
                dest,
                "--force",
            ])
            .current_dir(std::env::temp_dir())
            .env("CARGO_NAME", "test")
            .env("HOME", &home)
            .output()
            .unwrap();
        assert_refused(&out, expected);
    }
    assert_eq!(
        std::fs::read_to_string(home.join(".profile")).unwrap(),
        "mine"
    );
}
